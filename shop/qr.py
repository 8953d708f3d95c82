"""QR codes as SVG (trace labels, pickup codes): crisp at any print size, no image library needed; each with the
4-module quiet zone ISO/IEC 18004 asks for, on an opaque white background (a transparent one shows black on black in
a dark-mode viewer)."""
from __future__ import annotations

import io

import qrcode
from qrcode.image.svg import SvgPathFillImage

QUIET_ZONE_MODULES = 4


def svg_qr(text: str) -> bytes:
    """An SVG QR code of `text`."""
    buffer = io.BytesIO()
    qrcode.make(text, image_factory=SvgPathFillImage, box_size=10, border=QUIET_ZONE_MODULES).save(buffer)
    return buffer.getvalue()
