"""Request and response schemas of products, locations, lots, stock, trace codes and inventory uploads."""
from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from catalog.models import HISTORY_FIELDS, LOCATION_KINDS, MEASURE_FIELDS, STATUSES, UNITS
from shop.fields import (
    MAX_QUANTITY,
    BoundedInt,
    Choice,
    Computed,
    Date,
    Id,
    Identifier,
    Name,
    PriceFen,
    Quantity,
    QueryBool,
    RateBp,
    Text,
    WebLink,
    no_personal_number,
    no_personal_number_in_text,
    ordered_range,
)
from shop.pagination import PageQuery
from shop.regions.schemas import RegionCode, RegionRef

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}$"
SKU_ERROR = "3–32 upper-case letters, digits and dashes."
CODE_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,63}$"
CODE_ERROR = "Letters, digits, '.', '_' and '-'."
# a new location's or lot's code, as it is scanned and typed at the till: letters and digits parted by single
# separators, so no two read alike but for them (`L--1` or `L-1-` would read as `L-1` on a label, yet be another code)
NEW_CODE_PATTERN = r"^[A-Z0-9]+(?:[._-][A-Z0-9]+)*$"
NEW_CODE_ERROR = "Letters and digits, parted by single '.', '_' or '-' (none leading or trailing)."
LOT_CODE_MAX, LOCATION_CODE_MAX = 64, 32  # lots.lot_code is String(64), locations.code String(32)
MAX_NET_WEIGHT_G = 1_000_000  # one tonne in one unit
MAX_IMAGE_URL = 2048
NAME_MAX = 100  # a product's name, and so a search for it (`q`)
PRODUCT_SORTS = ("id", "newest", "price_asc", "price_desc")


def _sku(**kwargs) -> Identifier:
    """A SKU, upper-cased and normalised (a full-width or lower-case spelling names the same product); no person's
    ID or phone number in it."""
    return Identifier(max_length=32, pattern=SKU_PATTERN, pattern_error=SKU_ERROR, validate=no_personal_number,
                      **kwargs)


def _code(*, max_length: int, **kwargs) -> Identifier:
    """A lot or location code of at most `max_length` characters, upper-cased and normalised; no person's ID or phone
    number in it."""
    return Identifier(max_length=max_length, pattern=CODE_PATTERN, pattern_error=CODE_ERROR,
                      validate=no_personal_number, **kwargs)


def _images(**kwargs) -> fields.List:
    """Up to 20 https image URLs."""
    return fields.List(WebLink(max_length=MAX_IMAGE_URL),
                       validate=validate.Length(max=20), **kwargs)


class CertificateIn(Schema):
    """The poverty-alleviation product certificate (扶贫产品认定)."""

    number = Text(required=True, max_length=64)
    issuer = Text(required=True, max_length=100)
    valid_from = Date(required=True)
    valid_until = Date(required=True)


class ProductUpdate(Schema):
    """The fields a co-op or an admin may change on a product (rates and activation: admins only)."""

    name = Text(max_length=NAME_MAX)
    description = Text(max_length=5000, min_length=0, multiline=True)
    category = Text(max_length=32)
    unit = Choice(UNITS)
    net_weight_g = BoundedInt(minimum=1, maximum=MAX_NET_WEIGHT_G)
    price_fen = PriceFen()
    county_code = RegionCode()
    status = Choice(STATUSES)
    images = _images()
    platform_fee_bp = RateBp()
    store_commission_bp = RateBp()
    household_premium_bp = RateBp()
    dividend_bp = RateBp()
    certificate = fields.Nested(CertificateIn, allow_none=True)


class ProductCreate(ProductUpdate):
    """A new product; `supplier_id` only from admins (co-ops create drafts for their own supplier)."""

    sku = _sku(required=True)
    name = Text(required=True, max_length=NAME_MAX)
    description = Text(load_default="", max_length=5000, min_length=0, multiline=True)
    category = Text(required=True, max_length=32)
    unit = Choice(UNITS, required=True)
    net_weight_g = BoundedInt(minimum=1, maximum=MAX_NET_WEIGHT_G, required=True)
    price_fen = PriceFen(required=True)
    county_code = RegionCode(required=True)
    status = Choice(STATUSES, load_default="draft")
    images = _images(load_default=list)
    supplier_id = Id(load_default=None)
    certificate = fields.Nested(CertificateIn, load_default=None, allow_none=True)


class ProductQuery(PageQuery):
    """Product list filters."""

    county = RegionCode(load_default=None)
    donor = RegionCode(load_default=None)
    category = Text(load_default=None, max_length=32)
    q = Text(load_default=None, max_length=NAME_MAX)
    min_price_fen = PriceFen(minimum=0, load_default=None, strict=False)
    max_price_fen = PriceFen(minimum=0, load_default=None, strict=False)
    _price_range = ordered_range("min_price_fen", "max_price_fen", message="Must not be below `min_price_fen`.")
    certified = QueryBool(load_default=None)
    in_stock_at = Id(load_default=None, strict=False)
    status = Choice(STATUSES, load_default=None)
    supplier_id = Id(load_default=None, strict=False)
    sort = Choice(PRODUCT_SORTS, load_default="id", metadata={"description": (
        "The list's order: `id` (the order products were added in), `newest` (the last added first), `price_asc` "
        "(cheapest first), `price_desc` (dearest first); equal prices in id order, reversed with `price_desc`. "
        "A `cursor` continues the order it was issued for only: with another `sort` it is a 400 `invalid_cursor`.")})


class CertificateOut(Schema):
    """A valid certificate."""

    number = fields.String()
    issuer = fields.String()
    valid_from = Date(allow_none=True)
    valid_until = Date()


class SupplierRef(Schema):
    """A supplier named by id and name."""

    id = fields.Integer()
    name = fields.String()


class StockAvailable(Schema):
    """Units available at one location."""

    location_id = fields.Integer()
    available = fields.Integer()


class ProductOut(Schema):
    """A product; `certified` is false (and `certificate` null) once its certificate has lapsed."""

    sku = fields.String()
    name = fields.String()
    description = fields.String()
    category = fields.String()
    unit = fields.String()
    net_weight_g = fields.Integer()
    price_fen = fields.Integer()
    status = fields.String()
    county = fields.Nested(RegionRef)
    supplier = fields.Nested(SupplierRef)
    images = fields.List(fields.String())
    platform_fee_bp = fields.Integer()
    store_commission_bp = fields.Integer()
    household_premium_bp = fields.Integer()
    dividend_bp = fields.Integer()
    certified = fields.Boolean()
    certificate = fields.Nested(CertificateOut, allow_none=True)


class ProductDetailOut(ProductOut):
    """A product with its live stock per location."""

    stock = fields.List(fields.Nested(StockAvailable))


HISTORY_VALUE = {"oneOf": [{"type": "integer"}, {"type": "string", "enum": list(UNITS)}]}


class ProductChangeOut(Schema):
    """One change of the price, a rate, the unit or the net weight (the unit's values are text)."""

    id = fields.Integer()
    field = Choice((*HISTORY_FIELDS, *MEASURE_FIELDS))
    old_value = fields.Raw(attribute="old_shown", allow_none=True, metadata=HISTORY_VALUE)  # null: the starting value
    new_value = fields.Raw(attribute="new_shown", metadata=HISTORY_VALUE)
    changed_by = fields.Integer(allow_none=True)
    changed_at = fields.DateTime()


class LocationCreate(Schema):
    """A new stock location."""

    code = Identifier(max_length=LOCATION_CODE_MAX, pattern=NEW_CODE_PATTERN, pattern_error=NEW_CODE_ERROR,
                      validate=no_personal_number, required=True)
    name = Text(required=True, max_length=100)
    kind = Choice(LOCATION_KINDS, required=True)
    region_code = RegionCode(required=True)


class LocationOut(Schema):
    """A stock location."""

    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    region_code = fields.String()


class LocationQuery(PageQuery):
    """Location list filters."""

    kind = Choice(LOCATION_KINDS, load_default=None)


class StockOut(Schema):
    """One lot's stock at a location."""

    location_id = fields.Integer()
    lot_id = fields.Integer()
    lot_code = fields.String(attribute="lot.lot_code")
    trace_code = fields.String(attribute="lot.trace_code")
    sku = fields.String(attribute="lot.product.sku")
    name = fields.String(attribute="lot.product.name")
    on_hand = fields.Integer()
    reserved = fields.Integer()
    available = fields.Integer()


class ContributionIn(Schema):
    """What one household delivered into a lot."""

    household_code = Identifier(required=True, max_length=32, pattern=r"^[0-9A-Z-]{1,32}$",
                                pattern_error="1 to 32 letters, digits or dashes.")
    quantity = Quantity(required=True)


class LotCreate(Schema):
    """A new lot; `quantity` without contributions only from admins."""

    product_sku = _sku(required=True)
    lot_code = Identifier(max_length=LOT_CODE_MAX, pattern=NEW_CODE_PATTERN, pattern_error=NEW_CODE_ERROR,
                          validate=no_personal_number, required=True)
    harvested_on = Date(required=True)
    packed_on = Date(load_default=None)
    village = Name(required=True, max_length=64, validate=no_personal_number_in_text)
    location_code = _code(max_length=LOCATION_CODE_MAX, required=True)
    contributions = fields.List(fields.Nested(ContributionIn), load_default=list,
                                validate=validate.Length(max=1000))
    quantity = Quantity(load_default=None)

    @validates_schema
    def _lot_within_bounds(self, data, **kwargs):
        """A lot holds at most MAX_QUANTITY units, however many households delivered them."""
        total = sum(c["quantity"] for c in data.get("contributions", []))
        if total > MAX_QUANTITY:
            raise ValidationError(f"The contributions add up to {total} units; a lot holds at most {MAX_QUANTITY}.",
                                  field_name="contributions")


class LotStockOut(Schema):
    """A lot's stock at one location."""

    location_id = fields.Integer()
    on_hand = fields.Integer()
    reserved = fields.Integer()
    available = fields.Integer()


class LotOut(Schema):
    """A lot with its contributions' total and its live stock."""

    id = fields.Integer()
    lot_code = fields.String()
    trace_code = fields.String()
    sku = fields.String(attribute="product.sku")
    harvested_on = Date()
    packed_on = Date(allow_none=True)
    village = fields.String()
    quantity = fields.Integer()
    households = Computed(lambda lot: len(lot.contributions), fields.Integer())
    attributed_fen = fields.Integer()
    stock = fields.List(fields.Nested(LotStockOut), attribute="stock_rows")
    created_by = fields.Integer(allow_none=True)  # the user who put the lot's units into the shop
    created_at = fields.DateTime()


class TraceHouseholds(Schema):
    """How many households contributed, or only that they were fewer than 3."""

    count = fields.Integer(allow_none=True)
    fewer_than = fields.Integer()
    villages = fields.List(fields.String())


class ReachedOut(Schema):
    """The households money reached and their amount; both 0 when none yet; for 1 or 2 households (or a lot
    fewer than 3 delivered) `households` null, `fewer_than` 3 and no amount."""

    households = fields.Integer(allow_none=True)
    attributed_fen = fields.Integer()
    fewer_than = fields.Integer()


class TraceProduct(Schema):
    """The product a trace code belongs to."""

    sku = fields.String()
    name = fields.String(allow_none=True, metadata={"description": "Null while the product is an unpublished draft."})
    category = fields.String(allow_none=True, metadata={"description": "Null while the product is a draft."})
    unit = fields.String()
    county = fields.Nested(RegionRef)
    certified = fields.Boolean()
    certificate = fields.Nested(CertificateOut, allow_none=True)
    on_sale = fields.Boolean(metadata={"description": "Whether the product's shop page exists (on sale now)."})


class TraceLot(Schema):
    """The lot behind a trace code."""

    code = fields.String()
    harvested_on = Date()
    packed_on = Date(allow_none=True)
    village = fields.String()


class TraceOut(Schema):
    """The public trace of a lot: no names, no ID numbers, no amounts for fewer than 3 households."""

    trace_code = fields.String()
    product = fields.Nested(TraceProduct)
    lot = fields.Nested(TraceLot)
    prefecture = fields.Nested(RegionRef, allow_none=True, metadata={
        "description": "The prefecture of the product's county (null for a county with none)."})
    supplier = fields.Nested(SupplierRef)
    households = fields.Nested(TraceHouseholds)
    reached = fields.Nested(ReachedOut)
    attributed_fen = fields.Integer(metadata={
        "description": "What reached households through the lot (0 when none yet); absent when `reached` is "
                       "withheld (`fewer_than`)."})


class UploadFile(Schema):
    """The multipart form of an inventory upload."""

    file = Upload(required=True)


class UploadError(Schema):
    """One problem in an uploaded file, at the row (as Excel numbers it) and column it concerns, with its
    code and its message in English and Chinese (uploads stored before codes existed have only `message`)."""

    row = fields.Integer(allow_none=True)
    column = fields.String(allow_none=True)
    code = fields.String(metadata={"description": "Stable snake_case code of the problem, e.g. unknown_household."})
    message = fields.String(metadata={"description": "The problem in English."})
    message_zh = fields.String(metadata={"description": "The problem in Chinese, as the co-op portal shows it."})


class UploadOut(Schema):
    """An inventory upload and the state of its import."""

    id = fields.Integer()
    supplier_id = fields.Integer()
    filename = fields.String()
    sha256 = fields.String()
    status = fields.String()
    rows_total = fields.Integer()
    rows_done = fields.Integer()
    lots_created = fields.Integer()
    errors = fields.List(fields.Nested(UploadError))
    errors_total = fields.Integer(metadata={"description": "How many entries the upload's `errors` has (the first "
                                                           "problems found and, if there were more, one counting "
                                                           "the rest)."})
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


LISTED_UPLOAD_ERRORS = 3  # an upload's first errors a list of uploads carries; the upload's own read carries them all


class UploadListed(UploadOut):
    """An inventory upload as its supplier's list shows it: its first errors only (the upload's own read has all
    `errors_total` of them)."""

    errors = fields.List(fields.Nested(UploadError), metadata={
        "description": f"The first {LISTED_UPLOAD_ERRORS} of the upload's errors; "
                       "`GET /api/v1/inventory-uploads/{id}` has them all."})
