"""Request and response schemas of suppliers, households, benefit links and reveal audits.

Create and update schemas never carry `supplier_id` (it comes from the URL) and reject unknown
fields; output schemas mask ID numbers and bank accounts unless the service revealed them.
"""
from __future__ import annotations

from datetime import date, timedelta

from marshmallow import Schema, ValidationError, fields, validates_schema

from shop.clock import today
from shop.fields import (
    MAX_BP,
    MAX_QUANTITY,
    Bool,
    BoundedInt,
    Choice,
    Computed,
    Date,
    Id,
    Identifier,
    MaskedText,
    Name,
    PersonName,
    QueryBool,
    RateBp,
    Reason,
    Text,
    no_personal_number,
    no_personal_number_in_text,
    not_in_the_future,
)
from shop.pagination import DatedPageQuery, PageQuery
from shop.regions.schemas import RegionCode
from suppliers.identifiers import mask_bank_account, mask_id_number
from suppliers.models import (
    AGREEMENT_RATES,
    HOUSEHOLD_HISTORY_FIELDS,
    LINK_KINDS,
    SUPPLIER_HISTORY_FIELDS,
    SUPPLIER_KINDS,
)


def HouseholdCode(**kwargs) -> Identifier:  # noqa: N802 - a field factory reads like a field class
    """A household registry code: width-folded, trimmed, upper case; 1 to 32 letters, digits or dashes; not a person's
    ID or phone number (a code is shown unmasked)."""
    return Identifier(max_length=32, case="upper", pattern=r"^[0-9A-Z-]{1,32}$",
                      pattern_error="1 to 32 letters, digits or dashes.", validate=no_personal_number, **kwargs)


def IdNumber(**kwargs) -> Identifier:  # noqa: N802
    """A resident ID number: width-folded, invisible characters, spaces and dashes removed, upper case."""
    return Identifier(max_length=24, case="upper", drop_separators=True, **kwargs)


def BankAccount(**kwargs) -> Identifier:  # noqa: N802
    """A bank account number: width-folded, invisible characters, spaces and dashes removed (digits checked later)."""
    return Identifier(max_length=40, case="upper", drop_separators=True, **kwargs)


def _shown_account(obj) -> str | None:
    """The bank account, full when revealed, otherwise its last 4 digits."""
    account = obj.bank_account
    if account is None or obj.revealed:
        return account
    return mask_bank_account(account)


class RevealQuery(Schema):
    """`?reveal=true&reason=...`: an admin asks to see full personal data, with a reason."""

    reveal = QueryBool(load_default=False)
    reason = Reason(load_default=None, min_length=0)  # blank: reveal_reason_required, from the service


class Agreement(Schema):
    """A default agreement: four rates in basis points that together take at most 100 %."""

    platform_fee_bp = RateBp(required=True)
    store_commission_bp = RateBp(required=True)
    household_premium_bp = RateBp(required=True)
    dividend_bp = RateBp(required=True)

    @validates_schema
    def _at_most_everything(self, data, **kwargs):
        """The four rates sum to at most 10000 basis points."""
        if sum(data[rate] for rate in AGREEMENT_RATES) > MAX_BP:
            raise ValidationError(f"The rates sum to more than {MAX_BP} basis points.")


class SupplierCreate(Schema):
    """An admin registers a supplier; without `agreement` it gets the platform's default rates."""

    name = Name(required=True, max_length=128)
    kind = Choice(SUPPLIER_KINDS, required=True)
    uscc = Identifier(required=True, max_length=24, case="upper", drop_separators=True)
    county_code = RegionCode(required=True)
    contact = PersonName(load_default=None, max_length=128)
    bank_account = BankAccount(load_default=None)
    agreement = fields.Nested(Agreement, load_default=None)


class SupplierUpdate(Schema):
    """An admin edits or deactivates a supplier (its USCC and county stay); a new bank account needs a reason, new
    agreement rates keep it in their history if given."""

    name = Name(max_length=128)
    kind = Choice(SUPPLIER_KINDS)
    contact = PersonName(allow_none=True, max_length=128)
    bank_account = BankAccount(allow_none=True)
    reason = Reason()
    agreement = fields.Nested(Agreement)
    active = Bool()


class SupplierOut(Schema):
    """A supplier; the bank account is masked unless revealed."""

    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    uscc = fields.String()
    county_code = fields.String()
    contact = fields.String(allow_none=True)
    bank_account = Computed(_shown_account, fields.String(allow_none=True))
    agreement = fields.Nested(Agreement)
    active = fields.Boolean()
    created_at = fields.DateTime()


class SupplierQuery(PageQuery):
    """Supplier list filters."""

    kind = Choice(SUPPLIER_KINDS, load_default=None)
    county_code = RegionCode(load_default=None)
    active = QueryBool(load_default=None)


class HouseholdCreate(Schema):
    """A co-op (or admin) registers a household under a supplier; the county defaults to the supplier's."""

    code = HouseholdCode(required=True)
    county_code = RegionCode(load_default=None)
    head_name = PersonName(required=True, max_length=64, validate=no_personal_number_in_text)
    id_number = IdNumber(required=True)
    village = Name(required=True, max_length=64, validate=no_personal_number_in_text)
    members = BoundedInt(required=True, minimum=1, maximum=99)
    bank_account = BankAccount(load_default=None)
    consent_on = Date(required=True, validate=not_in_the_future)
    consent_basis = Text(required=True, max_length=200, validate=no_personal_number_in_text)


class HouseholdUpdate(Schema):
    """Edit or deactivate a household (its code, county and ID number stay); a new bank account needs a reason."""

    head_name = PersonName(max_length=64, validate=no_personal_number_in_text)
    village = Name(max_length=64, validate=no_personal_number_in_text)
    members = BoundedInt(minimum=1, maximum=99)
    bank_account = BankAccount(allow_none=True)
    reason = Reason()
    consent_on = Date(validate=not_in_the_future)
    consent_basis = Text(max_length=200, validate=no_personal_number_in_text)
    active = Bool()


class HouseholdOut(Schema):
    """A household; ID number and bank account are masked unless revealed."""

    id = fields.Integer()
    code = fields.String()
    county_code = fields.String()
    head_name = fields.String()
    id_number = Computed(lambda h: h.id_number if h.revealed else mask_id_number(h.id_number), fields.String())
    village = fields.String()
    members = fields.Integer()
    bank_account = Computed(_shown_account, fields.String(allow_none=True))
    consent_on = Date()
    consent_basis = fields.String()
    active = fields.Boolean()
    registered_by_id = fields.Integer()
    created_at = fields.DateTime()
    created_by = fields.Integer(allow_none=True, metadata={"description": "The user who registered it (null: the demo "
                                                                          "data, or registered before this was "
                                                                          "recorded)"})
    updated_at = fields.DateTime()


class HouseholdChangeOut(Schema):
    """One change of a field of a household (its bank account's are in the account-change audit): old and new as
    text (a date in ISO form, `true`/`false`)."""

    id = fields.Integer()
    household_id = fields.Integer()
    field = Choice(HOUSEHOLD_HISTORY_FIELDS)
    old = fields.String(attribute="old_value")
    new = fields.String(attribute="new_value")
    changed_by = fields.Integer()
    username = fields.String()
    changed_at = fields.DateTime()


class HouseholdQuery(PageQuery):
    """Household list filters."""

    code = HouseholdCode(load_default=None)
    head_name = PersonName(load_default=None, max_length=64,
                           metadata={"description": "Part of the head's name (Latin letters in any case)."})
    village = Name(load_default=None, max_length=64)
    active = QueryBool(load_default=None)


LINK_LEAD = timedelta(days=366)  # a link is registered when agreed: a later start is a mistyped year
LINK_TERM = timedelta(days=5 * 366)  # an agreement's term (a cooperation plan's five years): a later end is a typo


def _within(lead: timedelta, what: str):
    """A validator: a link's date is at most `lead` after today (in Asia/Shanghai), `what` naming that bound."""
    def check(day: date) -> None:
        if day > today() + lead:
            raise ValidationError(f"Must not be later than {what} from today ({(today() + lead).isoformat()}).")
    return check


STARTS = "At most a year after today (Asia/Shanghai)."
ENDS = "At most five years after today (Asia/Shanghai)."


class BenefitLinkCreate(Schema):
    """Link a household to the supplier in the URL; `id_number` is needed for another supplier's household."""

    household_code = HouseholdCode(required=True)
    id_number = IdNumber(load_default=None)
    kind = Choice(LINK_KINDS, required=True)
    shares = BoundedInt(load_default=None, minimum=1, maximum=MAX_QUANTITY)
    valid_from = Date(required=True, validate=_within(LINK_LEAD, "a year"), metadata={"description": STARTS})
    valid_until = Date(load_default=None, validate=_within(LINK_TERM, "five years"),
                       metadata={"description": f"Not before valid_from. {ENDS}"})

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

    valid_until = Date(required=True, validate=_within(LINK_TERM, "five years"),
                       metadata={"description": f"Not before the link's valid_from. {ENDS}"})


class BenefitLinkOut(Schema):
    """A benefit link."""

    id = fields.Integer()
    supplier_id = fields.Integer()
    household_id = fields.Integer()
    household_code = fields.String()
    kind = fields.String()
    shares = fields.Integer(allow_none=True)
    valid_from = Date()
    valid_until = Date(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.Integer(allow_none=True, metadata={"description": "The user who made it (null: the demo data, "
                                                                          "or made before this was recorded)"})
    ended_at = fields.DateTime(allow_none=True)
    ended_by = fields.Integer(allow_none=True, metadata={"description": "The user who ended it"})


class BenefitLinkQuery(PageQuery):
    """Benefit link list filters: kind, household, the day they are valid on."""

    kind = Choice(LINK_KINDS, load_default=None)
    household_id = Id(load_default=None, strict=False)
    on = Date(load_default=None)


class RevealAuditOut(Schema):
    """An audit row of a reveal."""

    id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    household_id = fields.Integer(allow_none=True)
    supplier_id = fields.Integer(allow_none=True)
    store_id = fields.Integer(allow_none=True)
    fields_revealed = fields.List(fields.String(), attribute="field_list", data_key="fields")
    reason = MaskedText()
    created_at = fields.DateTime()


class AccountChangeQuery(DatedPageQuery):
    """Bank account change filters: household, supplier, the user who changed it, the period."""

    household_id = Id(load_default=None, strict=False)
    supplier_id = Id(load_default=None, strict=False)
    user_id = Id(load_default=None, strict=False)


class RevealAuditQuery(AccountChangeQuery):
    """Reveal audit filters: household, supplier, store, the user who saw the data, the period."""

    store_id = Id(load_default=None, strict=False)


class AccountChangeOut(Schema):
    """An audit row of a bank account change (old and new masked: the last 4 digits and a keyed fingerprint of the
    whole number, `****0128 #3f9a1c2e`, so accounts ending alike are told apart)."""

    id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    household_id = fields.Integer(allow_none=True)
    supplier_id = fields.Integer(allow_none=True)
    old_masked = fields.String(allow_none=True)
    new_masked = fields.String(allow_none=True)
    reason = MaskedText()
    created_at = fields.DateTime()


HISTORY_VALUE = {"oneOf": [{"type": "integer"}, {"type": "string"}], "nullable": True,
                 "description": "A rate in basis points; any other field's value as text (null: no contact)"}


class SupplierChangeOut(Schema):
    """One change of a field of a supplier or of a rate of its default agreement (its bank account's are in the
    account-change audit): a rate's values as numbers, any other field's as text (`true`/`false` for `active`, null
    for no contact)."""

    id = fields.Integer()
    supplier_id = fields.Integer()
    field = Choice((*AGREEMENT_RATES, *SUPPLIER_HISTORY_FIELDS))
    old_value = fields.Raw(attribute="old_shown", allow_none=True, metadata=HISTORY_VALUE)
    new_value = fields.Raw(attribute="new_shown", allow_none=True, metadata=HISTORY_VALUE)
    changed_by = fields.Integer()
    username = fields.String()
    reason = MaskedText(allow_none=True)
    changed_at = fields.DateTime()
