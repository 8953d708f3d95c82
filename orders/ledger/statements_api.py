"""Statement routes, each JSON or a printable Chinese page: a household's (its co-op's account, or an admin's sum),
a supplier's and a store's, by posting time in an Asia/Shanghai period."""
from __future__ import annotations

from flask import Response, render_template
from marshmallow import Schema, fields

from orders.errors import OrderCode
from orders.ledger import statements
from orders.ledger.remittances_api import RemittanceOut
from shop.auth.security import current_user, require_role
from shop.blueprint import Blueprint
from shop.fields import Choice, Date
from shop.pagination import PeriodQuery
from suppliers.errors import SupplierCode

blp = Blueprint("ledger_statements", __name__, url_prefix="/api/v1", template_folder="templates",
                description="Statements of households, suppliers and stores",
                not_found={"household_id": SupplierCode.HOUSEHOLD_NOT_FOUND,
                           "supplier_id": SupplierCode.SUPPLIER_NOT_FOUND, "store_id": OrderCode.STORE_NOT_FOUND})


class StatementQuery(PeriodQuery):
    """The period (bounded: at most 366 days; this month by default), and `format=html` for the printable page."""

    from_date = Date(data_key="from", metadata={"description": (
        "First day, Asia/Shanghai, inclusive. Without it: the first day of the month of the period's last day "
        "(this month when `to` is missing too). The opening balance is everything posted before it.")})
    to_date = Date(data_key="to", metadata={"description": (
        "Day after the last, Asia/Shanghai, exclusive. Without it: tomorrow (everything posted so far). At most "
        "366 days after `from` (422 naming `to`).")})
    format = Choice(("json", "html"), load_default="json")


class StatementEntryOut(Schema):
    """One posting: when, what it came from, its amount and the running balance."""

    posting_id = fields.Integer()
    transaction_id = fields.Integer()
    kind = fields.String()
    date = Date()
    posted_at = fields.DateTime()
    order_id = fields.Integer(allow_none=True)
    sale_date = Date(allow_none=True)
    sku = fields.String(allow_none=True)
    product = fields.String(allow_none=True)
    lot_code = fields.String(allow_none=True)
    component = fields.String()
    payout_reference = fields.String(allow_none=True, metadata={"description": (
        "A payout entry's line, as on the bank transfer: PB<batch id>-L<line id>.")})
    amount_fen = fields.Integer()
    balance_fen = fields.Integer()


class StatementTotalsOut(Schema):
    """The period's credits, debits, net and closing balance; and the net apart: income (earned, net of refunds),
    paid out (to be paid or handed over) and returned by the bank, so opening + income − paid out + returned =
    closing."""

    credits_fen = fields.Integer()
    debits_fen = fields.Integer()
    net_fen = fields.Integer()
    income_fen = fields.Integer()
    paid_out_fen = fields.Integer()
    returned_fen = fields.Integer()
    closing_balance_fen = fields.Integer()


class StatementBodyOut(Schema):
    """Opening balance, entries and totals of one or more accounts."""

    opening_balance_fen = fields.Integer()
    entries = fields.List(fields.Nested(StatementEntryOut))
    totals = fields.Nested(StatementTotalsOut)


class StatementOut(StatementBodyOut):
    """A party's statement for a period."""

    party = fields.String()
    party_id = fields.Integer()
    from_date = Date(data_key="from", attribute="from")
    to_date = Date(data_key="to", attribute="to")
    accounts = fields.List(fields.String())


class StatementHouseholdOut(Schema):
    """The household (no personal data)."""

    id = fields.Integer()
    code = fields.String()
    county_code = fields.String()
    village = fields.String()


class HouseholdStatementOut(StatementOut):
    """A household's statement: a co-op's account of it, or (admin) the sum of its accounts."""

    household = fields.Nested(StatementHouseholdOut)
    supplier_id = fields.Integer(allow_none=True)
    supplier_name = fields.String(allow_none=True)


class StoreStatementOut(StatementOut):
    """A store's commission statement, the counter cash it holds (sign: cash held), what it must remit or is owed,
    and the remittances recorded in the period."""

    cash = fields.Nested(StatementBodyOut)
    cash_held_fen = fields.Integer()
    commission_fen = fields.Integer()
    to_remit_fen = fields.Integer(metadata={"description": "Cash held net of commission, at least 0"})
    owed_to_store_fen = fields.Integer(metadata={
        "description": "Commission net of cash held, at least 0: what a store payout batch pays it"})
    remittances = fields.List(fields.Nested(RemittanceOut))
    remitted_fen = fields.Integer(metadata={"description": "The cash remitted in the period"})


def _json_or_page(schema: type[Schema]) -> dict:
    """The documented 200 answer of a statement: `schema` as JSON, or (`format=html`) the printable page."""
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema},
                                                      "text/html": {"schema": {"type": "string"}}}}}


def _answer(statement: dict, *, page: bool, template: str):
    """The statement, or its printable page rendered from `template` (private, never cached)."""
    if not page:
        return statement
    html = render_template(template, s=statement, h=statement["page"])
    return Response(html, mimetype="text/html", headers={"Cache-Control": "private, no-store"})


@blp.route("/households/<int:household_id>/statement")
@require_role("admin", "coop", "auditor")
@blp.arguments(StatementQuery, location="query")
@blp.response(200, HouseholdStatementOut)
@blp.doc(responses=_json_or_page(HouseholdStatementOut))
def household_statement(query, household_id):
    """A household's statement (`format=html`: the printable page the co-op hands to the household)."""
    page = query.pop("format") == "html"
    statement = statements.household_statement(household_id=household_id, user=current_user(), page=page, **query)
    return _answer(statement, page=page, template="ledger_household_statement.html")


@blp.route("/suppliers/<int:supplier_id>/statement")
@require_role("admin", "coop", "auditor")
@blp.arguments(StatementQuery, location="query")
@blp.response(200, StatementOut)
@blp.doc(responses=_json_or_page(StatementOut))
def supplier_statement(query, supplier_id):
    """A supplier's statement (its co-op, or an admin; `format=html`: a printable page)."""
    page = query.pop("format") == "html"
    statement = statements.supplier_statement(supplier_id=supplier_id, user=current_user(), page=page, **query)
    return _answer(statement, page=page, template="ledger_supplier_statement.html")


@blp.route("/stores/<int:store_id>/statement")
@require_role("admin", "auditor", "store_staff")
@blp.arguments(StatementQuery, location="query")
@blp.response(200, StoreStatementOut)
@blp.doc(responses=_json_or_page(StoreStatementOut))
def store_statement(query, store_id):
    """A store's commission, counter cash held, what it must remit and its remittances (its staff or an admin;
    `format=html`: a page)."""
    page = query.pop("format") == "html"
    statement = statements.store_statement(store_id=store_id, user=current_user(), page=page, **query)
    return _answer(statement, page=page, template="ledger_store_statement.html")
