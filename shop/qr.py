"""QR codes as SVG (trace labels, pickup codes): crisp at any print size, no image library needed."""
from __future__ import annotations

import io

import qrcode
from qrcode.image.svg import SvgPathImage


def svg_qr(text: str) -> bytes:
    """An SVG QR code of `text`."""
    buffer = io.BytesIO()
    qrcode.make(text, image_factory=SvgPathImage, box_size=10, border=2).save(buffer)
    return buffer.getvalue()
