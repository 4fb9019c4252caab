"""report.html: one self-contained page (graphs embedded as base64 data URIs) with
the same blocks as OPTIMIZATION_SUMMARY.md."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from plumbing.files import write_atomic
from reports.glance import anchor
from reports.markdown import NOT_MEASURED, build_document, numeric_column

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1180px;
     color:#222;line-height:1.45;padding:0 1em}
h1{border-bottom:3px solid #2ca02c;padding-bottom:.2em}
h2{border-bottom:1px solid #ccc;padding-bottom:.15em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f0f0f0}
tr:nth-child(even) td{background:#fafafa}
td.nm{color:#999;font-style:italic}
td.tx,th.tx{text-align:left}
figure{margin:1.2em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-weight:600;margin-bottom:.3em}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto}
ul.findings li{margin:.25em 0}
div.wide{overflow-x:auto}
p.toc{font-size:.9em}
@media (max-width:600px){body{margin:1em auto;padding:0 .5em;overflow-wrap:anywhere}table{font-size:.8em}
  h1{font-size:1.35em}h2{font-size:1.2em}th,td{overflow-wrap:normal;padding:.25em .4em}}
"""


def _img_uri(path) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def to_html(doc: list, out_dir, title: str) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{e(title)}</title><style>{CSS}</style></head><body>"]
    section = ""
    for block in doc:
        kind = block[0]
        if kind == "h":
            section = block[2]
            parts.append(f"<h{block[1]} id=\"{e(anchor(block[2]))}\">{e(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{e(block[1])}</p>")
        elif kind == "ul":
            cls = ' class="findings"' if section == "Findings" else ""
            parts.append(f"<ul{cls}>" + "".join(f"<li>{e(str(i))}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            headers, rows = block[1], block[2]
            numeric = [numeric_column([r[i] for r in rows]) for i in range(len(headers))]
            parts.append("<div class=\"wide\"><table><thead><tr>" + "".join(          # a header sits over its column
                f"<th>{e(str(h))}</th>" if numeric[i] else f"<th class=\"tx\">{e(str(h))}</th>"
                for i, h in enumerate(headers)) + "</tr></thead><tbody>")
            for r in rows:
                cells = []
                for i, c in enumerate(r):
                    cls = "nm" if c == NOT_MEASURED else ("" if numeric[i] else "tx")
                    cells.append(f"<td class=\"{cls}\">{e(str(c))}</td>" if cls else f"<td>{e(str(c))}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table></div>")
        elif kind == "img":
            uri = _img_uri(block[2])
            if uri:
                parts.append(f"<figure><figcaption>{e(block[1])}</figcaption>"
                             f"<img alt=\"{e(block[1])}\" src=\"{uri}\"></figure>")
            else:
                parts.append(f"<p>{e(block[1])}: image missing.</p>")
        elif kind == "links":
            parts.append("<ul>" + "".join(
                f"<li><a href=\"{e(os.path.relpath(p, out_dir).replace(os.sep, '/'))}\">{e(t)}</a></li>"
                for t, p in block[1]) + "</ul>")
        elif kind == "code":
            parts.append(f"<pre><code>{e(block[1])}</code></pre>")
        elif kind == "toc":
            parts.append("<p class=\"toc\">Sections: " + " · ".join(
                f"<a href=\"#{e(anchor(t))}\">{e(t)}</a>" for t in block[1]) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_html(summary: dict, out_dir, images: list[dict] | None = None, run_dir=None,
                filename: str = "report.html", extra: list = ()) -> Path:
    """Write report.html into out_dir: self-contained except the flamegraph links."""
    out_dir = Path(out_dir)
    doc = build_document(summary, images or [], run_dir, extra)
    text = to_html(doc, out_dir, f"edgebench report: {summary.get('run_id')}")
    return write_atomic(out_dir / filename, text)
