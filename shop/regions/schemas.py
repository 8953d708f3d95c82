"""Schemas of regions and pairings."""
from __future__ import annotations

from marshmallow import Schema, fields

from shop.fields import Choice, Date, Identifier, Note, Text
from shop.pagination import PageQuery
from shop.regions.models import LEVELS, SIDES

REGION_CODE_PATTERN = r"^([0-9]{6}|[0-9]{6}-[A-Z]{2,12})$"
REGION_CODE_ERROR = "A 6-digit GB/T 2260 code or <prefecture code>-<SLUG>."


def RegionCode(**kwargs) -> Identifier:  # noqa: N802 - a field factory reads like a field class
    """A region code, normalised (full-width forms folded, trimmed, upper case) before its pattern is checked."""
    return Identifier(max_length=20, case="upper", pattern=REGION_CODE_PATTERN, pattern_error=REGION_CODE_ERROR,
                      **kwargs)


class RegionOut(Schema):
    """A region."""

    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent_code = fields.String(allow_none=True)
    side = fields.String(allow_none=True)


class RegionQuery(PageQuery):
    """Region list filters."""

    level = Choice(LEVELS, load_default=None)
    parent = RegionCode(load_default=None)


class RegionCreate(Schema):
    """An admin adds a region."""

    code = RegionCode(required=True)
    name = Text(required=True, max_length=64)
    level = Choice(LEVELS, required=True)
    parent_code = RegionCode(load_default=None)
    side = Choice(SIDES, load_default=None)
    note = Note(load_default=None)


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
    valid_from = Date()
    valid_until = Date(allow_none=True)
    source = fields.String(allow_none=True)
    ended_at = fields.DateTime(allow_none=True, metadata={"description": "When its end was last set or cleared"})


class PairingEndedOut(PairingOut):
    """A pairing as the admin who ended or reopened it reads it: with who did (the public reads show no user's id)."""

    ended_by = fields.Integer(allow_none=True, metadata={
        "description": "The admin who last set or cleared its end (null: never, or ended by the reference data)"})


class PairingQuery(PageQuery):
    """Pairing list filters: donor, recipient, the day they are valid on."""

    donor = RegionCode(load_default=None)
    recipient = RegionCode(load_default=None)
    on = Date(load_default=None)


class PairingCreate(Schema):
    """An admin adds a pairing."""

    donor_code = RegionCode(required=True)
    recipient_code = RegionCode(required=True)
    program = Text(load_default="east-west cooperation", max_length=64)
    valid_from = Date(required=True)
    valid_until = Date(load_default=None)
    source = Text(load_default=None, max_length=200)


class PairingEnd(Schema):
    """An admin ends a pairing, or reopens it (null): never before a sale it covers, never over another pairing."""

    valid_until = Date(required=True, allow_none=True)
