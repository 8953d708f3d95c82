"""Storefront pages: browse by donor district, search, product pages and the cart."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, ValidationError

from catalog import service as catalog
from catalog.schemas import NAME_MAX, ProductQuery
from shop.blueprint import query_args
from shop.errors import NotFound
from shop.fields import MAX_NUMBER_INPUT
from shop.pagination import InvalidCursor
from web.filters import FILTERS
from web.pages import error_page, page_blueprint, page_url, web_user
from web.storefront import browse, cart, reads

PAGE_SIZE = 20
LOTS_SHOWN = 20
BROWSE_FIELDS = ("donor", "county", "q", "category", "sort", "cursor")

bp = page_blueprint("storefront", __name__)
bp.static_folder, bp.static_url_path = "static", "/static/storefront"
for _name, _filter in FILTERS.items():
    bp.add_app_template_filter(_filter, _name)


@bp.app_context_processor
def _cart_size() -> dict:
    """The number of cart lines, for the cart link on every page."""
    return {"cart_size": cart.count}


@bp.route("/")
def home():
    """Products of the counties paired with a donor district, or a search by Chinese name or pinyin; narrowed by
    category and a price range in yuan, and sorted."""
    args = query_args(request.args)  # as the API reads them: a box holding only spaces or invisible characters is empty
    wanted = {name: args[name][:100] for name in BROWSE_FIELDS if name in args}
    error = None
    try:
        filters = ProductQuery().load(wanted, unknown=EXCLUDE)
    except ValidationError:
        filters, error = {}, "筛选条件有误，已显示全部商品。"
    filters = {name: filters[name] for name in BROWSE_FIELDS if filters.get(name) is not None}
    prices, price_errors = browse.price_range(args)
    if error:
        prices = {}
    try:
        page = catalog.list_products(actor=web_user(), limit=PAGE_SIZE, **filters, **prices)
    except InvalidCursor:
        filters.pop("cursor")
        error = "翻页链接无效，已回到第一页。"
        page = catalog.list_products(actor=web_user(), limit=PAGE_SIZE, **filters, **prices)
    districts = reads.donor_districts(on=catalog.today())
    chosen = next((d for group in districts.values() for d in group if d.code == filters.get("donor")), None)
    next_url = page_url(page["next_cursor"]) if page["next_cursor"] else None
    typed = {field: request.args.get(field, "")[:MAX_NUMBER_INPUT] for field in browse.PRICE_BOUNDS}
    status = 400 if error else 422 if price_errors else 200
    return render_template("storefront/home.html", page=page, filters=filters, districts=districts,
                           chosen=chosen, next_url=next_url, error=error, categories=reads.categories_on_sale(),
                           typed=typed, price_errors=price_errors, q_max=NAME_MAX), status


@bp.route("/p/<sku>")
def product(sku: str):
    """A product: price, certificate, availability per store and warehouse, and the lots on sale."""
    return _product_page(sku)


def _product_page(sku: str, *, error: str | None = None, typed: str = "1", status: int = 200):
    """The product page; `error`: why the units `typed` in its add-to-cart form were refused, shown beside them."""
    try:
        view = catalog.show_product(sku=sku, actor=web_user())
    except NotFound:
        return error_page(404, "没有这个商品，或它已下架。")
    where = reads.places()
    stock = [(where[s["location_id"]], s["available"]) for s in view["stock"] if s["location_id"] in where]
    lots, lot_count = reads.lots_on_sale(sku=view["sku"], limit=LOTS_SHOWN)
    return render_template("storefront/product.html", p=view, stock=stock, lots=lots, lot_count=lot_count,
                           error=error, typed=typed[:MAX_NUMBER_INPUT]), status


def _cart_page(error: str | None = None, status: int = 200, refused: tuple[str, str] | None = None):
    """The cart with each line's product (or a note that it is no longer on sale) and the total; `refused`: the SKU
    of the line whose change `error` refused and the units typed, shown again in that line's box."""
    lines = cart.lines()
    found = catalog.products_seen_by(skus=list(lines), actor=web_user())
    rows = [(sku, quantity, found.get(sku)) for sku, quantity in lines.items()]
    total = sum(item.price_fen * quantity for _, quantity, item in rows if item)
    names = reads.names_off_sale([sku for sku, _, item in rows if item is None])
    refused = (refused[0], refused[1][:MAX_NUMBER_INPUT]) if refused and refused[0] in lines else None
    return render_template("storefront/cart.html", rows=rows, total=total, error=error, names=names,
                           max_lines=cart.MAX_LINES, refused=refused), status


@bp.get("/cart")
def show_cart():
    """The cart."""
    return _cart_page()


@bp.post("/cart")
def add_to_cart():
    """Add units of a product to the cart (units that are no quantity: the product page again, saying why beside them;
    a cart at its bounds: the cart, saying why)."""
    try:
        sku = cart.parse_sku(request.form.get("sku", ""))
        catalog.get_product(sku=sku, actor=web_user())
    except NotFound:
        return _cart_page("这个商品已下架，没有加入购物车。", 404)
    except cart.CartError as exc:
        return _cart_page(str(exc), 422)
    typed = request.form.get("quantity", "1")
    try:
        quantity = cart.parse_quantity(typed)
    except cart.CartError as exc:
        return _product_page(sku, error=str(exc), typed=typed, status=422)
    try:
        cart.add(sku, quantity)
    except cart.CartError as exc:  # the cart's bounds: the cart, with its lines to remove or lower
        return _cart_page(str(exc), 422)
    flash("已加入购物车。")
    return redirect(url_for(".show_cart"))


@bp.post("/cart/<sku>")
def change_cart_line(sku: str):
    """Change a cart line's quantity (0, or the remove button, removes it)."""
    typed = request.form.get("quantity", "")
    try:
        quantity = 0 if request.form.get("remove") else cart.parse_quantity(typed, allow_zero=True)
        cart.set_quantity(cart.parse_sku(sku), quantity)
    except cart.CartError as exc:
        return _cart_page(str(exc), 422, refused=(sku, typed))
    return redirect(url_for(".show_cart"))
