"""Routes: regions and donor↔recipient pairings."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from marshmallow import Schema

from shop.auth.security import current_user, require_role
from shop.blueprint import PAGED, Blueprint
from shop.caching import cache_key, parsed_query, public_json
from shop.db import commit
from shop.errors import ShopCode
from shop.http import ReadAt
from shop.pagination import page_schema
from shop.regions import service
from shop.regions.schemas import (
    PairingCreate,
    PairingEnd,
    PairingEndedOut,
    PairingOut,
    PairingQuery,
    RegionCreate,
    RegionOut,
    RegionQuery,
)

blp = Blueprint("regions", __name__, url_prefix="/api/v1", description="Regions and pairings",
                not_found={"code": ShopCode.REGION_NOT_FOUND, "pairing_id": ShopCode.PAIRING_NOT_FOUND})


def _public_key(schema: type[Schema] | None = None):
    """The cache key function of an anonymous reference-data read (a new generation after every admin change),
    keyed on the route, its path values as the route reads them (a code in its one spelling, an id as a number: not
    the path as typed, whose spellings would each make a new key) and the arguments as `schema` parses them, so
    unknown parameters make no new keys."""

    def key() -> str | None:
        arguments = parsed_query(schema()) if schema else ()
        if arguments is None:
            return None
        return cache_key(service.CACHE_NAMESPACE, "read", request.endpoint, sorted((request.view_args or {}).items()),
                         arguments)

    return key


@blp.route("/regions")
class Regions(MethodView):
    @public_json(_public_key(RegionQuery))
    @blp.arguments(RegionQuery, location="query")
    @blp.response(200, page_schema(RegionOut))
    @blp.errors(PAGED)
    @blp.doc(security=[])
    def get(self, query):
        """List regions by level and parent."""
        return service.list_regions(**query)

    @require_role("admin")
    @blp.errors({409: [ShopCode.REGION_EXISTS], 422: [ShopCode.REGION_NOT_FOUND]})
    @blp.arguments(RegionCreate)
    @blp.response(201, RegionOut, location=ReadAt("regions.get_region", "code"))
    def post(self, data):
        """Add a region."""
        region = service.create_region(**data)
        commit()
        return region


@blp.route("/regions/<code>")
@public_json(_public_key())
@blp.response(200, RegionOut)
@blp.doc(security=[])
def get_region(code):
    """Show a region."""
    return service.get_region(code)


@blp.route("/pairings")
class Pairings(MethodView):
    @public_json(_public_key(PairingQuery))
    @blp.arguments(PairingQuery, location="query")
    @blp.response(200, page_schema(PairingOut))
    @blp.errors(PAGED)
    @blp.doc(security=[])
    def get(self, query):
        """List pairings by donor, recipient and validity date."""
        return service.list_pairings(**query)

    @require_role("admin")
    @blp.errors({409: [ShopCode.PAIRING_BACKDATED, ShopCode.PAIRING_OVERLAPS], 422: [ShopCode.REGION_NOT_FOUND]})
    @blp.arguments(PairingCreate)
    @blp.response(201, PairingOut, location=ReadAt("regions.PairingById", pairing_id="id"))
    def post(self, data):
        """Add a pairing."""
        pairing = service.create_pairing(**data)
        commit()
        return pairing


@blp.route("/pairings/<int:pairing_id>")
class PairingById(MethodView):
    @public_json(_public_key())
    @blp.response(200, PairingOut)
    @blp.doc(security=[])
    def get(self, pairing_id):
        """Show a pairing."""
        return service.get_pairing(pairing_id)

    @require_role("admin")
    @blp.errors({409: [ShopCode.PAIRING_BACKDATED, ShopCode.PAIRING_OVERLAPS]})
    @blp.arguments(PairingEnd)
    @blp.response(200, PairingEndedOut)
    def patch(self, data, pairing_id):
        """End a pairing on a date, or reopen it with null (who did and when are kept)."""
        pairing = service.set_pairing_end(pairing_id=pairing_id, actor=current_user(), **data)
        commit()
        return pairing
