"""Request and response schemas of suppliers, households, benefit links and reveal audits.

Create and update schemas never carry `supplier_id` (it comes from the URL) and reject unknown
fields; output schemas mask ID numbers and bank accounts unless the service revealed them.
"""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shop.pagination import PageQuery
from shop.regions.schemas import REGION_CODE
from suppliers.identifiers import mask_bank_account, mask_id_number
from suppliers.models import LINK_KINDS, SUPPLIER_KINDS

NAME = validate.Length(min=1, max=128)
SHORT_TEXT = validate.Length(min=1, max=64)
HOUSEHOLD_CODE = validate.Regexp(r"^[0-9A-Za-z-]{1,32}$", error="1 to 32 letters, digits or dashes.")
ACCOUNT_TEXT = validate.Length(min=1, max=40)


def _shown_account(obj) -> str | None:
    """The bank account, full when revealed, otherwise its last 4 digits."""
    account = obj.bank_account
    if account is None or obj.revealed:
        return account
    return mask_bank_account(account)


class RevealQuery(Schema):
    """`?reveal=true&reason=...`: an admin asks to see full personal data, with a reason."""

    reveal = fields.Boolean(load_default=False)
    reason = fields.String(load_default=None, validate=validate.Length(max=500))


class SupplierCreate(Schema):
    """An admin registers a supplier."""

    name = fields.String(required=True, validate=NAME)
    kind = fields.String(required=True, validate=validate.OneOf(SUPPLIER_KINDS))
    uscc = fields.String(required=True, validate=validate.Length(min=1, max=24))
    county_code = fields.String(required=True, validate=REGION_CODE)
    contact = fields.String(load_default=None, validate=NAME)
    bank_account = fields.String(load_default=None, validate=ACCOUNT_TEXT)


class SupplierUpdate(Schema):
    """An admin edits or deactivates a supplier (its USCC and county stay)."""

    name = fields.String(validate=NAME)
    kind = fields.String(validate=validate.OneOf(SUPPLIER_KINDS))
    contact = fields.String(allow_none=True, validate=NAME)
    bank_account = fields.String(allow_none=True, validate=ACCOUNT_TEXT)
    active = fields.Boolean()


class SupplierOut(Schema):
    """A supplier; the bank account is masked unless revealed."""

    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    uscc = fields.String()
    county_code = fields.String()
    contact = fields.String(allow_none=True)
    bank_account = fields.Function(_shown_account, allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()


class SupplierQuery(PageQuery):
    """Supplier list filters."""

    kind = fields.String(load_default=None, validate=validate.OneOf(SUPPLIER_KINDS))
    county_code = fields.String(load_default=None, validate=REGION_CODE)
    active = fields.Boolean(load_default=None)


class HouseholdCreate(Schema):
    """A co-op (or admin) registers a household under a supplier; the county defaults to the supplier's."""

    code = fields.String(required=True, validate=HOUSEHOLD_CODE)
    county_code = fields.String(load_default=None, validate=REGION_CODE)
    head_name = fields.String(required=True, validate=SHORT_TEXT)
    id_number = fields.String(required=True, validate=validate.Length(min=1, max=24))
    village = fields.String(required=True, validate=SHORT_TEXT)
    members = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=99))
    bank_account = fields.String(load_default=None, validate=ACCOUNT_TEXT)
    consent_on = fields.Date(required=True)
    consent_basis = fields.String(required=True, validate=validate.Length(min=1, max=200))


class HouseholdUpdate(Schema):
    """Edit or deactivate a household (its code, county and ID number stay)."""

    head_name = fields.String(validate=SHORT_TEXT)
    village = fields.String(validate=SHORT_TEXT)
    members = fields.Integer(strict=True, validate=validate.Range(min=1, max=99))
    bank_account = fields.String(allow_none=True, validate=ACCOUNT_TEXT)
    consent_on = fields.Date()
    consent_basis = fields.String(validate=validate.Length(min=1, max=200))
    active = fields.Boolean()


class HouseholdOut(Schema):
    """A household; ID number and bank account are masked unless revealed."""

    id = fields.Integer()
    code = fields.String()
    county_code = fields.String()
    head_name = fields.String()
    id_number = fields.Function(lambda h: h.id_number if h.revealed else mask_id_number(h.id_number))
    village = fields.String()
    members = fields.Integer()
    bank_account = fields.Function(_shown_account, allow_none=True)
    consent_on = fields.Date()
    consent_basis = fields.String()
    active = fields.Boolean()
    registered_by_id = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class HouseholdQuery(PageQuery):
    """Household list filters."""

    code = fields.String(load_default=None, validate=HOUSEHOLD_CODE)
    village = fields.String(load_default=None, validate=SHORT_TEXT)
    active = fields.Boolean(load_default=None)


class BenefitLinkCreate(Schema):
    """Link a household to the supplier in the URL; `id_number` is needed for another supplier's household."""

    household_code = fields.String(required=True, validate=HOUSEHOLD_CODE)
    id_number = fields.String(load_default=None, validate=validate.Length(min=1, max=24))
    kind = fields.String(required=True, validate=validate.OneOf(LINK_KINDS))
    shares = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1))
    valid_from = fields.Date(required=True)
    valid_until = fields.Date(load_default=None)

    @validates_schema
    def _shares_and_period(self, data, **kwargs):
        """Shares go with dividend links only; a period does not end before it starts."""
        errors = {}
        if data["kind"] == "dividend" and data["shares"] is None:
            errors["shares"] = ["Required for a dividend link."]
        elif data["kind"] != "dividend" and data["shares"] is not None:
            errors["shares"] = ["Only dividend links hold shares."]
        if data["valid_until"] is not None and data["valid_until"] < data["valid_from"]:
            errors["valid_until"] = ["Must not be before valid_from."]
        if errors:
            raise ValidationError(errors)


class BenefitLinkEnd(Schema):
    """End a benefit link on a date (inclusive)."""

    valid_until = fields.Date(required=True)


class BenefitLinkOut(Schema):
    """A benefit link."""

    id = fields.Integer()
    supplier_id = fields.Integer()
    household_id = fields.Integer()
    household_code = fields.String()
    kind = fields.String()
    shares = fields.Integer(allow_none=True)
    valid_from = fields.Date()
    valid_until = fields.Date(allow_none=True)
    created_at = fields.DateTime()


class BenefitLinkQuery(PageQuery):
    """Benefit link list filters: kind, household, the day they are valid on."""

    kind = fields.String(load_default=None, validate=validate.OneOf(LINK_KINDS))
    household_id = fields.Integer(load_default=None)
    on = fields.Date(load_default=None)


class RevealAuditOut(Schema):
    """An audit row of a reveal."""

    id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    household_id = fields.Integer(allow_none=True)
    supplier_id = fields.Integer(allow_none=True)
    fields_revealed = fields.List(fields.String(), attribute="field_list", data_key="fields")
    reason = fields.String()
    created_at = fields.DateTime()


class RevealAuditQuery(PageQuery):
    """Reveal audit filters."""

    household_id = fields.Integer(load_default=None)
    supplier_id = fields.Integer(load_default=None)
    user_id = fields.Integer(load_default=None)
