"""Jinja filters the pages share: money from fen, units and order statuses in Chinese, phone numbers masked."""
from __future__ import annotations

from datetime import datetime

from shop.clock import SHANGHAI
from shop.fields import mainland_mobile, mask_personal_numbers

UNIT_NAMES = {"kg": "公斤", "box": "盒", "bag": "袋", "piece": "只"}
STATUS_NAMES = {
    "pending_payment": "待支付", "paid": "已支付", "shipped": "已发货", "delivered": "已送达",
    "fulfilled": "已取货", "cancelled": "已取消", "expired": "已过期", "refunded": "已退款",
}
CHANNEL_NAMES = {"delivery": "快递配送", "pickup": "门店自提", "counter": "门店购买"}


def yuan(fen: int | None) -> str:
    """An amount in fen as yuan with two decimals: 1230 → "¥12.30" (negative amounts keep their sign)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def unit_name(unit: str) -> str:
    """A product's unit in Chinese (kg → 公斤)."""
    return UNIT_NAMES.get(unit, unit)


def status_name(status: str) -> str:
    """An order status in Chinese."""
    return STATUS_NAMES.get(status, status)


def channel_name(channel: str) -> str:
    """An order channel in Chinese."""
    return CHANNEL_NAMES.get(channel, channel)


def local_time(moment: datetime | None) -> str:
    """A timestamp as Asia/Shanghai wall-clock time to the minute ("2026-11-26 22:16")."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if moment else ""


def masked(text: str | None) -> str:
    """Free text someone else wrote (a reason, a reply), shown as the API lists it: personal numbers masked."""
    return mask_personal_numbers(text) if text else ""


def masked_phone(phone: str) -> str:
    """A phone number with all but its first 3 and last 4 digits hidden (13912345678 → 139****5678)."""
    if len(phone) < 8:
        return "*" * (len(phone) - 2) + phone[-2:]
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def shown_username(username: str) -> str:
    """A username as a page shows it: a consumer's, their mobile number, masked (`masked_phone`), as the order page
    shows a delivery phone; any other as it is."""
    return masked_phone(username) if mainland_mobile(username) == username else username


FILTERS = {"yuan": yuan, "unit_name": unit_name, "status_name": status_name, "channel_name": channel_name,
           "local_time": local_time, "masked": masked,
           "shown_username": shown_username}
