"""The acceptance certificate: a check report as a page a store prints or
files with the unit. It names the unit by id only (never the person it is
issued to), and the registry's report number by which the signed report is
verified (`amr units show UNIT`)."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #999; padding: 0.3em 0.6em; text-align: left; }
.pass { color: #060; font-weight: bold; } .fail { color: #a00; font-weight: bold; }
"""


def render(report: dict[str, Any]) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    head = [
        ("Unit", report["unit_id"]),
        ("Board / chip", f"{report.get('board')} / {report.get('chip')}"),
        ("Firmware", report.get("firmware")),
        ("Key generation", report.get("key_generation")),
        ("App hash", report.get("app_hash")),
        ("Checked", f"{report.get('checked_at')} by {report.get('actor')}"),
        ("Registry report", report.get("report_id")),
    ]
    rows = "".join(
        f"<tr><td>{escape(c['name'])}</td>"
        f'<td class="{"pass" if c["passed"] else "fail"}">{"pass" if c["passed"] else "FAIL"}'
        f"</td><td>{escape(c['measured'])}</td><td>{escape(c['expected'])}</td></tr>"
        for c in report["checks"]
    )
    facts = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>" for name, value in head
    )
    mark = "pass" if report["passed"] else "fail"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>AMR acceptance check {escape(report['unit_id'])}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f'<h1>Acceptance check: <span class="{mark}">{verdict}</span></h1>'
        f"<table>{facts}</table><h2>Checks</h2>"
        "<table><tr><th>check</th><th>result</th><th>measured</th><th>expected</th></tr>"
        f"{rows}</table></body></html>\n"
    )


def write_certificate(path: Path, report: dict[str, Any]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(report))
    os.replace(tmp, path)
    return path
