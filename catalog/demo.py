"""The catalog's demo world: Liangshan products, two warehouses, lots from the demo households, stock."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select

from catalog import inventory, service, tasks, uploads
from catalog.models import Location, Product
from shop.auth.models import User
from shop.db import after_commit, db
from suppliers import service as suppliers
from suppliers.demo import synthetic_uscc

RATES = {"platform_fee_bp": 500, "store_commission_bp": 800, "household_premium_bp": 1000, "dividend_bp": 300}
ISSUER = "凉山州乡村振兴局"
LOCATIONS = (("XC-WH", "西昌仓储配送中心", "warehouse", "513401"),
             ("FS-WH", "佛山禅城大凉山分拨仓", "warehouse", "440604"))
CATEGORIES = {"grain": "粮油", "fruit": "水果", "spice": "调味", "meat": "肉禽", "veg": "蔬菜", "fungi": "菌菇"}


@dataclass(frozen=True)
class DemoProduct:
    """A demo product: who makes it, what it is, its price and whether its certificate lapsed."""

    sku: str
    name: str
    county_code: str
    category: str
    unit: str
    net_weight_g: int
    price_fen: int
    lapsed: bool = False


PRODUCTS = (
    DemoProduct("ZJ-KQM-1KG", "昭觉苦荞米", "513431", "grain", "bag", 1000, 3980),
    DemoProduct("ZJ-KQC-250G", "昭觉黑苦荞茶", "513431", "grain", "box", 250, 4800),
    DemoProduct("ZJ-KQMT-500G", "昭觉苦荞面条", "513431", "grain", "bag", 500, 1680),
    DemoProduct("BT-KQF-1KG", "布拖苦荞粉", "513429", "grain", "bag", 1000, 2990),
    DemoProduct("BT-WYY-5KG", "布拖乌洋芋", "513429", "veg", "box", 5000, 4500),
    DemoProduct("XD-KQC-300G", "喜德苦荞茶", "513432", "grain", "box", 300, 5200),
    DemoProduct("YY-APL-5KG", "盐源苹果", "513423", "fruit", "box", 5000, 6800),
    DemoProduct("LB-QC-5KG", "雷波脐橙（5公斤装）", "513437", "fruit", "box", 5000, 7900),
    DemoProduct("LB-QC-10KG", "雷波脐橙（10公斤装）", "513437", "fruit", "box", 10000, 14900),
    DemoProduct("JY-QHJ-250G", "金阳青花椒", "513430", "spice", "bag", 250, 3600),
    DemoProduct("MG-SY-1KG", "美姑山羊肉", "513436", "meat", "kg", 1000, 11800),
    DemoProduct("MG-YYJ", "美姑岩鹰鸡", "513436", "meat", "piece", 1500, 16800),
    DemoProduct("ML-ST-500G", "木里松茸", "513422", "fungi", "box", 500, 39800),
    DemoProduct("YX-GJ-200G", "越西贡椒", "513434", "spice", "bag", 200, 3200, lapsed=True),
    DemoProduct("LB-QC-GIFT", "雷波脐橙礼盒", "513437", "fruit", "box", 3000, 6900),
)
# The household co-ops' lots arrive as real upload files (a GBK sheet with Chinese headers and dates,
# and a UTF-8 one with a BOM and English headers), half of each lot stocked in Foshan; they are queued
# like the API's uploads and imported by the same task once the seed commits.
DEMO_FILES = {"513431": "demo_inventory_zhaojue.csv", "513437": "demo_inventory_leibo.csv"}
DATA_DIR = Path(__file__).parent / "data"
EXTRA_SUPPLIERS = {  # county → the name of the demo co-op created here for the other counties' products
    "513429": "布拖县乌洋芋苦荞专业合作社（演示）", "513432": "喜德县苦荞茶专业合作社（演示）",
    "513423": "盐源县苹果专业合作社（演示）", "513430": "金阳县青花椒专业合作社（演示）",
    "513436": "美姑县山羊岩鹰鸡专业合作社（演示）", "513422": "木里县松茸专业合作社（演示）",
    "513434": "越西县贡椒专业合作社（演示）",
}


def _supplier_for(county_code: str, number: int) -> int:
    """The demo supplier of a county: the suppliers domain's co-op there, or one created here."""
    found = suppliers.list_suppliers(kind=None, county_code=county_code, active=True, limit=100, cursor=None)
    wanted = EXTRA_SUPPLIERS.get(county_code)
    for supplier in found["items"]:
        if wanted is None or supplier.name == wanted:
            return supplier.id
    if wanted is None:
        raise RuntimeError(f"The suppliers demo has no co-op in county {county_code}; seed it first.")
    return suppliers.create_supplier(name=wanted, kind="cooperative", uscc=synthetic_uscc(county_code, 10 + number),
                                     county_code=county_code, contact="演示联系人").id


def _certificate(number: int, lapsed: bool) -> dict:
    """A demo certificate, valid through 2027 or lapsed in mid-2026."""
    return {"number": f"凉扶认〔2026〕{number:04d}号", "issuer": ISSUER, "valid_from": date(2026, 1, 1),
            "valid_until": date(2026, 6, 30) if lapsed else date(2027, 12, 31)}


def _product(admin: User, index: int, spec: DemoProduct) -> tuple[Product, bool]:
    """The demo product, created if missing; and whether it was created."""
    product = db.session.scalar(select(Product).where(Product.sku == spec.sku))
    if product is not None:
        return product, False
    return service.create_product(
        actor=admin, supplier_id=_supplier_for(spec.county_code, index), sku=spec.sku, name=spec.name,
        description=f"凉山州{spec.name}，产地直供，带动建档立卡脱贫户增收（演示数据）。",
        category=CATEGORIES[spec.category], unit=spec.unit, net_weight_g=spec.net_weight_g,
        price_fen=spec.price_fen, county_code=spec.county_code, status="active",
        images=[f"https://img.example.org/demo/{spec.sku.lower()}.jpg"],
        certificate=_certificate(index + 1, spec.lapsed), **RATES), True


def _location(code: str, name: str, kind: str, region_code: str) -> Location:
    """The demo location, created if missing."""
    return inventory.find_location(code) or inventory.create_location(code=code, name=name, kind=kind,
                                                                      region_code=region_code)


def _enterprise_lots(product: Product, warehouse: Location, store_side: Location) -> int:
    """Two lots of explicit quantity (no household data for these demo co-ops), half moved to Foshan."""
    created = 0
    for n, harvested_on in enumerate((date(2026, 9, 3), date(2026, 10, 15)), start=1):
        lot_code = f"{product.sku}-2026-{n:02d}"
        if inventory.taken_lot_code(supplier_id=product.supplier_id, lot_code=lot_code) is not None:
            continue
        lot = inventory.add_lot(product=product, location=warehouse, lot_code=lot_code,
                                harvested_on=harvested_on, packed_on=harvested_on, village="县城加工点", quantity=60)
        inventory.move(from_location_id=warehouse.id, to_location_id=store_side.id, product_id=product.id,
                       quantity=lot.quantity // 2)
        created += 1
    return created


def _queue_upload(admin: User, county_code: str, products: list[Product]) -> int:
    """Upload a household co-op's shipped inventory file (once) and import it in this process right after the
    seed commits, before the stores are stocked from the warehouse (a worker, where there is one, would import it
    too late for that). 1 if it was uploaded now."""
    data = (DATA_DIR / DEMO_FILES[county_code]).read_bytes()
    upload, created = uploads.submit_upload(actor=admin, supplier_id=products[0].supplier_id,
                                            filename=DEMO_FILES[county_code], data=data, max_bytes=len(data),
                                            queue_import=False)
    if upload.status == "pending":
        after_commit(lambda upload_id=upload.id: tasks.run_import(upload_id))
    return int(created)


def seed_demo() -> list[str]:
    """Create the demo products, warehouses, lots and stock that are missing."""
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    xichang, foshan = (_location(*spec) for spec in LOCATIONS)
    products = lots = 0
    by_county: dict[str, list[Product]] = {}
    for index, spec in enumerate(PRODUCTS):
        product, created = _product(admin, index, spec)
        products += created
        if spec.county_code in DEMO_FILES:
            by_county.setdefault(spec.county_code, []).append(product)
        else:
            lots += _enterprise_lots(product, xichang, foshan)
    files = sum(_queue_upload(admin, county_code, county_products)
                for county_code, county_products in by_county.items())
    return [f"{products} products created ({len(PRODUCTS)} in the demo, one with a lapsed certificate)",
            f"locations {xichang.code} (id {xichang.id}) and {foshan.code} (id {foshan.id})",
            f"{lots} enterprise lots created; {files} co-op inventory files uploaded, imported once the seed commits "
            f"(a supplier's lots and trace codes: GET /api/v1/suppliers/<id>/lots)"]
