"""The demo's report: one self-contained HTML page next to its PNG charts."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}
h1{border-bottom:3px solid #4c78a8}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f5f9}.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}code{font-size:.9em;background:#f6f8fa;padding:0 .2em}
"""


@dataclass
class Report:
    """Sections of text, tables and images, written as ``report.html`` in ``directory``."""

    title: str
    directory: Path
    parts: list[str] = field(default_factory=list)

    def section(self, title: str, text: str = "") -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2>")
        if text:
            self.parts.append(f"<p>{html.escape(text)}</p>")

    def para(self, text: str, *, css: str | None = None) -> None:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
        )
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def image(self, name: str, png: bytes, caption: str) -> Path:
        path = self.directory / name
        path.write_bytes(png)
        self.parts.append(
            f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return path

    def write(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / "report.html"
        page = (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
            + "\n".join(self.parts)
            + "</body></html>"
        )
        tmp = out.with_suffix(".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
        return out
