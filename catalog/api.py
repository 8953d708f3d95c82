"""Routes: products, locations, lots, stock and the public trace JSON."""
from __future__ import annotations

import io

from flask import current_app, request, send_file
from flask.views import MethodView

from catalog import inventory, service, trace, uploads
from catalog.errors import CatalogCode
from catalog.schemas import (
    LocationCreate,
    LocationOut,
    LocationQuery,
    LotCreate,
    LotOut,
    ProductChangeOut,
    ProductCreate,
    ProductDetailOut,
    ProductOut,
    ProductQuery,
    ProductUpdate,
    StockOut,
    TraceOut,
    UploadFile,
    UploadListed,
    UploadOut,
)
from catalog.spreadsheet import template_workbook
from shop.auth.models import User
from shop.auth.security import authenticate, current_user, require_role
from shop.blueprint import PAGED, Blueprint
from shop.bodies import body_field
from shop.caching import CacheKey, json_response, parsed_query, public_json
from shop.db import commit
from shop.errors import ShopCode
from shop.http import ReadAt
from shop.idempotency import idempotent
from shop.pagination import DatedPageQuery, PageQuery, page_schema
from suppliers.errors import SupplierCode

blp = Blueprint("catalog", __name__, url_prefix="/api/v1", description="Products, stock and traceability",
                not_found={"location_id": CatalogCode.LOCATION_NOT_FOUND, "lot_id": CatalogCode.LOT_NOT_FOUND,
                           "sku": CatalogCode.PRODUCT_NOT_FOUND, "trace_code": CatalogCode.TRACE_CODE_NOT_FOUND,
                           "upload_id": CatalogCode.UPLOAD_NOT_FOUND, "supplier_id": SupplierCode.SUPPLIER_NOT_FOUND})
PRODUCT_QUERY = ProductQuery()  # one instance: a schema class would be instantiated (fields deep-copied) per request


def _public_page_key() -> CacheKey | None:
    """The cache key of an anonymous product list, from its parsed arguments (unknown parameters do not
    make new keys); lists filtered by stock, and arguments that fail validation, are never cached."""
    arguments = parsed_query(PRODUCT_QUERY)
    if arguments is None or dict(arguments)["in_stock_at"] is not None:
        return None
    return service.public_cache_key("page", *arguments)


def _viewer() -> User | None:
    """The signed-in user on public routes, if a token was sent."""
    return authenticate() if request.headers.get("Authorization") else None


@blp.route("/products")
class Products(MethodView):
    @public_json(_public_page_key)
    @blp.arguments(PRODUCT_QUERY, location="query")
    @blp.response(200, page_schema(ProductOut))
    @blp.errors({**PAGED, 401: [ShopCode.INVALID_TOKEN]})
    @blp.doc(security=[])
    def get(self, query):
        """List and search products."""
        return json_response(service.list_products(actor=_viewer(), **query))

    @blp.errors({403: [CatalogCode.ACTIVATION_ADMIN_ONLY, CatalogCode.ORIGIN_ADMIN_ONLY, CatalogCode.RATES_ADMIN_ONLY],
                 409: [CatalogCode.SKU_TAKEN, CatalogCode.PRODUCT_NAME_TAKEN, SupplierCode.SUPPLIER_INACTIVE],
                 422: [CatalogCode.INVALID_RATES]})
    @require_role("admin", "coop")
    @blp.arguments(ProductCreate)
    @blp.response(201, ProductOut, location=ReadAt("catalog.ProductBySku", "sku"))
    def post(self, data):
        """Create a product."""
        product = service.create_product(actor=current_user(), **data)
        commit()
        return service.product_view(product, on=service.today())


@blp.route("/products/<sku>")
class ProductBySku(MethodView):
    @blp.response(200, ProductDetailOut)
    @blp.errors({401: [ShopCode.INVALID_TOKEN]})
    @blp.doc(security=[])
    def get(self, sku):
        """Show a product with its live stock per location."""
        return json_response(service.show_product(sku=sku, actor=_viewer()))

    @blp.errors({403: [CatalogCode.ACTIVATION_ADMIN_ONLY, CatalogCode.CERTIFICATE_ADMIN_ONLY,
                       CatalogCode.ORIGIN_ADMIN_ONLY, CatalogCode.RATES_ADMIN_ONLY],
                 409: [CatalogCode.MEASURE_FIXED, CatalogCode.ORIGIN_FIXED, CatalogCode.PRODUCT_NAME_TAKEN,
                       SupplierCode.SUPPLIER_INACTIVE],
                 422: [CatalogCode.INVALID_RATES]})
    @require_role("admin", "coop")
    @blp.arguments(ProductUpdate)
    @blp.response(200, ProductOut)
    def patch(self, data, sku):
        """Edit a product; price, rate, unit and net weight changes are kept in its history."""
        product = service.update_product(actor=current_user(), sku=sku, changes=service.ProductChanges(**data))
        commit()
        return service.product_view(product, on=service.today())


@blp.route("/products/<sku>/history")
@require_role("admin", "coop", "auditor")
@blp.arguments(DatedPageQuery, location="query")
@blp.response(200, page_schema(ProductChangeOut))
def product_history(query, sku):
    """List a product's price, rate, unit and net weight changes."""
    return service.product_history(actor=current_user(), sku=sku, **query)


@blp.route("/locations")
class Locations(MethodView):
    @require_role("admin", "coop", "store_staff", "auditor")
    @blp.arguments(LocationQuery, location="query")
    @blp.response(200, page_schema(LocationOut))
    def get(self, query):
        """List stock locations."""
        return inventory.list_locations(**query)

    @require_role("admin")
    @blp.errors({409: [CatalogCode.LOCATION_CODE_TAKEN], 422: [ShopCode.REGION_NOT_FOUND]})
    @blp.arguments(LocationCreate)
    @blp.response(201, LocationOut, location=ReadAt("catalog.get_location", location_id="id"))
    def post(self, data):
        """Add a stock location."""
        location = inventory.create_location(**data)
        commit()
        return location


@blp.route("/locations/<int:location_id>")
@require_role("admin", "coop", "store_staff", "auditor")
@blp.response(200, LocationOut)
def get_location(location_id):
    """Show a stock location."""
    return inventory.get_location(location_id)


@blp.route("/locations/<int:location_id>/stock")
@require_role("admin", "auditor", "store_staff")
@blp.arguments(PageQuery, location="query")
@blp.response(200, page_schema(StockOut))
def location_stock(query, location_id):
    """List the stock per lot at a location (store staff: their store's location only, what a stocktake counts)."""
    return inventory.stock_seen_by(actor=current_user(), location_id=location_id, **query)


def _lot_keys(**_) -> str:
    """A new lot's keys belong to its supplier (`inventory.lot_keys`)."""
    return inventory.lot_keys(actor=current_user(), product_sku=body_field(LotCreate, "product_sku"))


@blp.route("/lots", methods=["POST"])
@blp.errors({404: [CatalogCode.PRODUCT_NOT_FOUND], 409: [CatalogCode.LOT_CODE_TAKEN, SupplierCode.SUPPLIER_INACTIVE],
             422: [CatalogCode.LOCATION_NOT_WAREHOUSE, CatalogCode.HOUSEHOLD_NOT_LINKED,
                   CatalogCode.HOUSEHOLD_TWICE_IN_LOT]})
@require_role("admin", "coop")
@idempotent(scope=_lot_keys)
@blp.arguments(LotCreate)
@blp.response(201, LotOut, location=ReadAt("catalog.get_lot", lot_id="id"))
def create_lot(data):
    """Create a lot with its household contributions and stock."""
    lot = inventory.create_lot(actor=current_user(), **data)
    commit()
    return lot


@blp.route("/lots/<int:lot_id>")
@require_role("admin", "coop", "auditor")
@blp.response(200, LotOut)
def get_lot(lot_id):
    """Show a lot with its stock."""
    return inventory.get_lot(lot_id=lot_id, actor=current_user())


@blp.route("/suppliers/<int:supplier_id>/lots")
@require_role("admin", "coop", "auditor")
@blp.arguments(PageQuery, location="query")
@blp.response(200, page_schema(LotOut))
def supplier_lots(query, supplier_id):
    """List a supplier's lots, newest first, with their stock per location."""
    return inventory.list_supplier_lots(actor=current_user(), supplier_id=supplier_id, **query)


@blp.route("/trace/<trace_code>")
@blp.response(200, TraceOut)
@blp.doc(security=[])
def trace_lot(trace_code):
    """Show the public trace of a lot."""
    return json_response(trace.trace(trace_code=trace_code))


@blp.route("/suppliers/<int:supplier_id>/inventory-uploads")
class InventoryUploads(MethodView):
    @blp.errors({409: [SupplierCode.SUPPLIER_INACTIVE]})
    @require_role("admin", "coop")
    @blp.arguments(UploadFile, location="files")
    @blp.response(202, UploadOut, location=ReadAt("catalog.get_upload", upload_id="id"))
    @blp.alt_response(200, schema=UploadOut, description="The same file was uploaded before: that upload.")
    def post(self, files, supplier_id):
        """Upload a CSV or XLSX inventory file for import."""
        upload, created = uploads.submit_upload(
            actor=current_user(), supplier_id=supplier_id, filename=files["file"].filename or "upload",
            data=files["file"].read(), max_bytes=current_app.config["INVENTORY_UPLOAD_MAX_BYTES"])
        commit()
        return uploads.upload_view(upload), 202 if created else 200

    @require_role("admin", "coop", "auditor")
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, page_schema(UploadListed))
    def get(self, query, supplier_id):
        """List a supplier's inventory uploads, each with its first errors and their count."""
        return uploads.list_uploads(actor=current_user(), supplier_id=supplier_id, **query)


@blp.route("/inventory-uploads/<int:upload_id>")
@require_role("admin", "coop", "auditor")
@blp.response(200, UploadOut)
def get_upload(upload_id):
    """Show an inventory upload with its progress and errors."""
    return uploads.get_upload(actor=current_user(), upload_id=upload_id)


@blp.route("/inventory-uploads/template.xlsx")
@blp.response(200, {"format": "binary", "type": "string"}, content_type=uploads.XLSX_TYPE)
@blp.doc(security=[])
def upload_template():
    """Download the inventory upload template (headers in both languages explained, an example row)."""
    return send_file(io.BytesIO(template_workbook(uploads.TEMPLATE_EXAMPLE)), mimetype=uploads.XLSX_TYPE,
                     as_attachment=True, download_name="inventory-upload-template.xlsx")
