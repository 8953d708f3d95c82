"""Schemas of regions and pairings."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from shop.pagination import PageQuery
from shop.regions.models import LEVELS, SIDES

REGION_CODE = validate.Regexp(r"^(\d{6}|\d{6}-[A-Z]{2,12})$",
                              error="A 6-digit GB/T 2260 code or <prefecture code>-<SLUG>.")


class RegionOut(Schema):
    """A region."""

    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent_code = fields.String(allow_none=True)
    side = fields.String(allow_none=True)


class RegionQuery(PageQuery):
    """Region list filters."""

    level = fields.String(load_default=None, validate=validate.OneOf(LEVELS))
    parent = fields.String(load_default=None, validate=REGION_CODE)


class RegionCreate(Schema):
    """An admin adds a region."""

    code = fields.String(required=True, validate=REGION_CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent_code = fields.String(load_default=None, validate=REGION_CODE)
    side = fields.String(load_default=None, validate=validate.OneOf(SIDES))
    note = fields.String(load_default=None, validate=validate.Length(max=200))


class RegionRef(Schema):
    """A region named by code and name."""

    code = fields.String()
    name = fields.String()


class PairingOut(Schema):
    """A donor↔recipient pairing with its validity."""

    id = fields.Integer()
    donor = fields.Nested(RegionRef)
    recipient = fields.Nested(RegionRef)
    program = fields.String()
    valid_from = fields.Date()
    valid_until = fields.Date(allow_none=True)
    source = fields.String(allow_none=True)


class PairingQuery(PageQuery):
    """Pairing list filters: donor, recipient, the day they are valid on."""

    donor = fields.String(load_default=None, validate=REGION_CODE)
    recipient = fields.String(load_default=None, validate=REGION_CODE)
    on = fields.Date(load_default=None)


class PairingCreate(Schema):
    """An admin adds a pairing."""

    donor_code = fields.String(required=True, validate=REGION_CODE)
    recipient_code = fields.String(required=True, validate=REGION_CODE)
    program = fields.String(load_default="east-west cooperation", validate=validate.Length(min=1, max=64))
    valid_from = fields.Date(required=True)
    valid_until = fields.Date(load_default=None)
    source = fields.String(load_default=None, validate=validate.Length(max=200))


class PairingEnd(Schema):
    """An admin ends a pairing."""

    valid_until = fields.Date(required=True)
