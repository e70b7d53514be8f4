"""Unit labels and bundle QR codes, read back by an independent decoder
(zxing-cpp), as a phone or the store's scanner would."""

from __future__ import annotations

from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from amrkit.label import unit_id_from_qr, write_label, write_qr


def _decoded(path: Path) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(path))]


def test_label_names_the_unit_and_nothing_else(tmp_path: Path) -> None:
    path = write_label(tmp_path / "unit.png", "00a1b2c3d4e5f607", "esp32c3-coin")
    (payload,) = _decoded(path)
    assert unit_id_from_qr(payload) == "00a1b2c3d4e5f607"
    assert payload == "AMR:UNIT:00a1b2c3d4e5f607"  # no key, no generation, no case
    assert not (tmp_path / "unit.png.tmp").exists()


@pytest.mark.parametrize("payload", ["AMR:UNIT:zz", "https://example.org", ""])
def test_a_scan_that_is_not_a_unit_label_is_refused(payload: str) -> None:
    with pytest.raises(ValueError):
        unit_id_from_qr(payload)


def test_bundle_qr_when_it_fits_and_none_when_not(tmp_path: Path) -> None:
    small = '{"format": "amr-receiver-bundle", "ciphertext": "' + "A" * 600 + '"}'
    assert write_qr(tmp_path / "small.png", small)
    assert _decoded(tmp_path / "small.png") == [small]
    assert not write_qr(tmp_path / "big.png", "x" * 5000)
    assert not (tmp_path / "big.png").exists()
