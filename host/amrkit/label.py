"""The label stuck on a unit and on its pouch: the unit id as text and as a
QR code, and the board. Nothing on it is secret: a label found with the
unit tells an abuser nothing a scanner could use, and the store scans it to
find the unit in the registry (`AMR:UNIT:<id>`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

QR_PREFIX = "AMR:UNIT:"
_SCALE = 6  # pixels a QR module: about 1 mm at 150 dpi, which a phone reads
_MARGIN = 16
_TEXT_PX = 28


def qr_payload(unit_id: str) -> str:
    return QR_PREFIX + unit_id.lower()


def unit_id_from_qr(payload: str) -> str:
    """The unit id a scanned label names; ValueError for anything else."""
    if not payload.startswith(QR_PREFIX):
        raise ValueError(f"not an AMR unit label: {payload[:40]!r}")
    unit_id = payload[len(QR_PREFIX) :]
    bytes.fromhex(unit_id)  # ValueError if not hex
    return unit_id


def render(unit_id: str, board: str) -> Image.Image:
    """The label as an image: the QR code beside the id and the board."""
    qr = segno.make(qr_payload(unit_id), error="m")
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=_SCALE, border=2)
    code = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    font = ImageFont.load_default(_TEXT_PX)
    small = ImageFont.load_default(_TEXT_PX * 2 // 3)
    lines = [(f"unit {unit_id}", font), (board, small)]
    width = max(int(font.getlength(text)) for text, font in lines)
    label = Image.new("L", (code.width + width + 3 * _MARGIN, code.height + 2 * _MARGIN), 255)
    label.paste(code, (_MARGIN, _MARGIN))
    draw = ImageDraw.Draw(label)
    y = _MARGIN + code.height // 2 - _TEXT_PX
    for text, face in lines:
        draw.text((code.width + 2 * _MARGIN, y), text, fill=0, font=face)
        y += _TEXT_PX + 8
    return label


def write_label(path: Path, unit_id: str, board: str) -> Path:
    """Write the label as PNG, whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    render(unit_id, board).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def write_qr(path: Path, text: str) -> bool:
    """Write `text` as a QR code PNG if it fits one code (a receiver bundle
    for a phone to scan); False, and nothing written, if it does not."""
    try:
        qr = segno.make(text, error="l", micro=False)
    except segno.DataOverflowError:
        return False
    tmp = path.with_name(path.name + ".tmp")
    qr.save(str(tmp), kind="png", scale=4, border=4)
    os.replace(tmp, path)
    return True
