"""出荷実績インポート: upload a CSV (services/bcart_csv.py writes it) and read B-cart's 取込結果,
which judges each row on its own: good rows are applied, bad ones listed with B-cart's message."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from kuroko.errors import PageChanged
from pages.bcart.site import BcartSite

CELLS = {"line": "import_result.row_line", "logistics_id": "import_result.row_logistics_id",
         "outcome": "import_result.row_outcome", "message": "import_result.row_message"}


class ImportRow(BaseModel):
    line: int
    """The file's line (the header is line 1)."""
    logistics_id: str
    ok: bool
    message: str


class ImportResult(BaseModel):
    file_name: str
    file_error: str | None
    """A whole-file refusal (encoding, header, file name): nothing was imported."""
    rows: list[ImportRow]

    @property
    def errors(self) -> list[ImportRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def updated(self) -> list[str]:
        """Bカート発送IDs B-cart updated."""
        return [r.logistics_id for r in self.rows if r.ok]

    @property
    def ok(self) -> bool:
        return self.file_error is None and not self.errors


class BcartShippingImport:
    def __init__(self, site: BcartSite) -> None:
        self.site = site

    def upload(self, csv_path: Path) -> ImportResult:
        """Upload ``csv_path`` and return B-cart's per-row result. One call imports once; a dropped
        session before the upload (B-cart then imports nothing) is logged into and tried again."""
        path = Path(csv_path)
        if not path.is_file():
            raise FileNotFoundError(f"no 出荷実績インポート file at {path}")
        return self.site.act(lambda: self._upload_once(path), "出荷実績インポート")

    def _upload_once(self, path: Path) -> ImportResult:
        site = self.site
        site.goto("/logistics/import")
        site.visible("shipping_import.heading")
        site.visible("shipping_import.file").first.set_input_files(str(path))
        site.submit("shipping_import.submit")
        if site.el("import_result.heading").count() == 0:
            message = site.alert_text("shipping_import.error") if site.el("shipping_import.error").count() else ""
            raise PageChanged(f"bcart: 出荷実績インポート showed no 取込結果 after the upload {message}".strip())
        fields, tables = site.read_test_ids(
            {"file_name": "import_result.file_name", "file_error": "import_result.file_error"},
            {"rows": ("import_result.row", CELLS)},
        )
        rows = []
        for row in tables["rows"]:
            cells = {k: (v[0] if v else "") for k, v in row.items()}
            if not cells["line"].isdigit():
                raise PageChanged(f"bcart: a 取込結果 row shows line {cells['line']!r} (selectors/bcart.yaml)")
            rows.append(ImportRow(line=int(cells["line"]), logistics_id=cells["logistics_id"],
                                  ok=cells["outcome"] == "成功", message=cells["message"]))
        return ImportResult(file_name=(fields["file_name"] or [path.name])[0],
                            file_error=fields["file_error"][0] if fields["file_error"] else None, rows=rows)
