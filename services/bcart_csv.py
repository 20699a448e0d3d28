"""The 出荷実績インポート CSV the robot uploads to B-cart (受注管理 > 出荷実績インポート).

Format (B-cart's import rules; a working integration's columns): a header row with the eight columns below in
this order; one row per shipment (Bカート発送ID = ``logistics.id``); Shift_JIS (written as CP932,
Windows' Shift_JIS, which B-cart reads); CRLF line ends; every non-empty field double-quoted
(an empty optional field is written as nothing, unquoted); the file name half-width.

Never a blank: B-cart overwrites a stored 送り状番号 or 発送日 with nothing when the cell is empty.
``shipping_results_csv`` refuses the whole file — before anything is written — when a row has a
blank or partial 送り状番号 (several numbers comma-joined: see ``join_tracking_numbers``) or 発送日,
raising ``BlankShippingField`` naming the row and the 発送ID.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from services.bcart_api import (
    BlankShippingField,
    checked_delivery_code,
    checked_shipment_date,
    checked_shipment_status,
)

HEADER = ("Bカート発送ID", "送り状番号", "発送日", "出荷管理番号", "発送状況", "発送メモ", "お客様への連絡事項",
          "対応状況")
ENCODING = "cp932"
"""Shift_JIS as Japanese Windows (and B-cart) read it."""


@dataclass(frozen=True)
class ShippingResultRow:
    """One shipment's result. The optional columns, left None, are written empty — which B-cart
    takes as "leave as it is" for all but 送り状番号 and 発送日, and those two are never empty."""

    logistics_id: int
    delivery_code: str
    """送り状番号: one tracking number, or several comma-joined (``join_tracking_numbers``)."""
    shipment_date: date | str
    status: str = "発送済"
    """発送状況: 発送指示 or 発送済 (未発送 is allowed but unusual for a result)."""
    shipment_code: str | None = None
    """出荷管理番号 (e.g. the MCF order id)."""
    memo: str | None = None
    admin_message: str | None = None
    """お客様への連絡事項 (shown to the customer in マイページ)."""
    order_status: str | None = None
    """対応状況 by its label, or None to leave it."""


def _quote(value: str | None) -> str:
    if value is None or value == "":
        return ""
    return '"' + value.replace('"', '""') + '"'


def shipping_results_csv(rows: Sequence[ShippingResultRow]) -> bytes:
    """The file's bytes. Refuses (BlankShippingField) an empty list, a repeated 発送ID, and any row
    with a blank or partial 送り状番号 / 発送日 or an unknown 発送状況 — nothing is produced then."""
    if not rows:
        raise BlankShippingField("no shipment to import: an empty 出荷実績インポート file is never uploaded")
    lines = [",".join(_quote(h) for h in HEADER)]
    seen: set[int] = set()
    for number, row in enumerate(rows, start=1):
        where = f"出荷実績インポート row {number} (Bカート発送ID {row.logistics_id})"
        if not isinstance(row.logistics_id, int) or row.logistics_id <= 0:
            raise BlankShippingField(f"{where}: Bカート発送ID must be a positive number")
        if row.logistics_id in seen:
            raise BlankShippingField(f"{where}: the same 発送ID appears twice; one row per shipment")
        seen.add(row.logistics_id)
        cells = [
            str(row.logistics_id),
            checked_delivery_code(row.delivery_code, where=where),
            checked_shipment_date(row.shipment_date, where=where).isoformat(),
            row.shipment_code,
            checked_shipment_status(row.status, where=where),
            row.memo,
            row.admin_message,
            row.order_status,
        ]
        for cell in cells:
            if cell is not None and ("\r" in cell or "\n" in cell):
                raise BlankShippingField(f"{where}: a value holds a line break; B-cart reads one line per row")
        lines.append(",".join(_quote(c) for c in cells))
    text = "\r\n".join(lines) + "\r\n"
    try:
        return text.encode(ENCODING)
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end]
        raise BlankShippingField(f"出荷実績インポート: {bad!r} cannot be written in Shift_JIS; change that value") \
            from None


def default_file_name(now: datetime | None = None) -> str:
    """Half-width only, as B-cart asks: ``shipping_results_20261120_093000.csv``."""
    return f"shipping_results_{(now or datetime.now()).strftime('%Y%m%d_%H%M%S')}.csv"


def write_shipping_results_csv(directory: Path, rows: Sequence[ShippingResultRow], *,
                               name: str | None = None) -> Path:
    """Write the file into ``directory`` (atomically) and return its path."""
    data = shipping_results_csv(rows)
    file_name = name or default_file_name()
    if not file_name.isascii() or not all(c.isalnum() or c in "._-" for c in file_name):
        raise BlankShippingField(f"出荷実績インポート file name {file_name!r} must be half-width letters and digits")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
