"""Routes: the pairing report (admins, auditors) and the public county disclosure (公示, no token)."""
from __future__ import annotations

from flask import Response, current_app
from marshmallow import Schema, fields

from orders.ledger import reports
from orders.ledger.errors import LedgerCode
from orders.ledger.periods import Month
from shop.auth.security import require_role
from shop.blueprint import Blueprint
from shop.db import commit
from shop.errors import ShopCode
from shop.extensions import limiter
from shop.fields import Choice, Computed, Date
from shop.pagination import PeriodQuery

EXPORTS = {
    "csv": (reports.pairing_report_csv, "text/csv"),
    "xlsx": (reports.pairing_report_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "svg": (reports.pairing_report_svg, "image/svg+xml"),
}
blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Pairing reports and public disclosure",
                not_found={"code": ShopCode.REGION_NOT_FOUND})


def _disclosure_limit() -> str:
    """The configured limit on public disclosure reads per address (a first reading publishes a month)."""
    return current_app.config["DISCLOSURE_RATE_LIMIT"]


# one budget of disclosure reads per address, shared by the JSON route and the county pages (web.disclosure)
disclosure_limit = limiter.shared_limit(_disclosure_limit, scope="disclosure")


class PairingReportQuery(PeriodQuery):
    """The period and the format (`json`, `csv`, `xlsx`, or `svg`: a bar chart)."""

    format = Choice(("json", "csv", "xlsx", "svg"), load_default="json")


class PairingRowOut(Schema):
    """One (donor district, recipient county) row; `paired` false when no pairing was valid on the sale dates."""

    donor_code = fields.String()
    donor_name = fields.String()
    county_code = fields.String()
    county_name = fields.String()
    paired = fields.Boolean()
    orders = fields.Integer()
    units = fields.Integer()
    sales_fen = fields.Integer()
    households_reached = fields.Integer()
    attributed_fen = fields.Integer()


class PairingTotalsOut(Schema):
    """The report's totals."""

    units = fields.Integer()
    sales_fen = fields.Integer()
    attributed_fen = fields.Integer()


class PairingReportOut(Schema):
    """The pairing report of a period, when it was computed and the time its rollups are fresh as of (every ledger
    transaction committed by then is included; null before the first refresh). Later refunds change it."""

    from_date = Date(data_key="from", attribute="from", allow_none=True)
    to_date = Date(data_key="to", attribute="to", allow_none=True)
    computed_at = fields.DateTime()
    fresh_as_of = fields.DateTime(allow_none=True)
    rows = fields.List(fields.Nested(PairingRowOut))
    totals = fields.Nested(PairingTotalsOut)


class CountyCodeOut(Schema):
    """A county's code and name."""

    code = fields.String()
    name = fields.String()


class DisclosureFiguresOut(Schema):
    """Households reached and the amount attributed; both null (with `fewer_than`) under 3 households."""

    households = fields.Integer(allow_none=True)
    attributed_fen = fields.Integer(allow_none=True)
    fewer_than = fields.Integer()


class DisclosureVillageOut(DisclosureFiguresOut):
    """A village's row: `merged` false, told apart from the merged row by it even if the village is named 其他村."""

    village = fields.String()
    merged = Computed(lambda _row: False, fields.Boolean())


class DisclosureOtherVillagesOut(DisclosureVillageOut):
    """The merged "other villages" row (其他村, `merged` true), which does not say how many villages it merges."""

    merged = Computed(lambda _row: True, fields.Boolean())


class DisclosureQuery(Schema):
    """`?month=YYYY-MM`: a month published already (by default the last one)."""

    month = Month()


class DisclosureRevisionOut(Schema):
    """The month's figures as the ledger has them at `computed_at` (later refunds, payments dated into the month
    late), by the same rules; when 1 or 2 households' figures changed since publication (in all, or in a row that
    changed: a village, or the merged villages), only `households` null and `fewer_than` 3."""

    computed_at = fields.DateTime()
    villages = fields.List(fields.Nested(DisclosureVillageOut))
    other_villages = fields.Nested(DisclosureOtherVillagesOut, allow_none=True)
    total = fields.Nested(DisclosureFiguresOut)
    households = fields.Integer(allow_none=True)
    fewer_than = fields.Integer()


class DisclosureOut(Schema):
    """A county's public disclosure of a month as published: per village, small villages merged, and the county
    total; `from` (inclusive) and `to` (exclusive) are the month's Asia/Shanghai dates, `computed_at` when it was
    published; `revision` the figures as they were last revised if they changed since (null if not, as of
    `checked_at`): a revision once shown is kept, and a newer one differs from each shown before by at least 3
    households in every row that changed."""

    county = fields.Nested(CountyCodeOut)
    month = fields.String()
    from_date = Date(data_key="from", attribute="from")
    to_date = Date(data_key="to", attribute="to")
    computed_at = fields.DateTime()
    checked_at = fields.DateTime()
    villages = fields.List(fields.Nested(DisclosureVillageOut))
    other_villages = fields.Nested(DisclosureOtherVillagesOut, allow_none=True)
    total = fields.Nested(DisclosureFiguresOut)
    revision = fields.Nested(DisclosureRevisionOut, allow_none=True)


@blp.route("/reports/pairings")
@require_role("admin", "auditor")
@blp.arguments(PairingReportQuery, location="query")
@blp.doc(responses={"200": {"content": {"application/json": {"schema": PairingReportOut}, **{
    mimetype: {"schema": {"type": "string", "format": "binary"}} for _render, mimetype in EXPORTS.values()}}}})
@blp.response(200, PairingReportOut)
def pairing_report(query):
    """Per (donor district, recipient county): orders, units, sales, households reached, attributed amount."""
    output = query.pop("format")
    report = reports.pairing_report(**query)
    commit()  # the embedded default's refresh, if the rollups were stale
    if output == "json":
        return report
    render, mimetype = EXPORTS[output]
    return Response(render(report), mimetype=mimetype,
                    headers={"Content-Disposition": f"attachment; filename=pairings.{output}"})


@blp.route("/disclosure/counties/<code>")
@disclosure_limit
@blp.arguments(DisclosureQuery, location="query")
@blp.response(200, DisclosureOut)
@blp.errors({404: [LedgerCode.DISCLOSURE_BEFORE_FIRST_MONTH],
             409: [LedgerCode.DISCLOSURE_NOT_PUBLISHED], 422: [ShopCode.VALIDATION_ERROR],
             429: [ShopCode.RATE_LIMITED]})
@blp.doc(security=[])
def county_disclosure(query, code):
    """The public disclosure (公示) of a county for a month: per village, households reached and the amount
    attributed."""
    disclosure = reports.county_disclosure(code=code, **query)
    commit()  # a month's first reading publishes it (months since the first sale only, reads rate-limited)
    return disclosure
