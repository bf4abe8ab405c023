"""Check evals/datasets/kb_docs_queries.jsonl against the documents of this folder.

For every query: the gold `doc` exists, has a sidecar, and every `answer_contains` string occurs verbatim
(whitespace ignored) in ONE unit of the document's raw extracted text — a paragraph / table row for
Markdown, TXT, HTML, DOCX, CSV, XLSX, a page for PDF (pypdf, python-docx, openpyxl, stdlib). When the
project's own loaders and chunker are importable, it also checks that one chunk of the gold document
contains them all (the `copilot eval retrieval --docs` hit rule).

Run: .venv/bin/python evals/datasets/kb_docs/check_queries.py   (exit code 1 on any failure)
"""

from __future__ import annotations

import csv
import html.parser
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "kb_docs"
QUERIES = ROOT.parent / "kb_docs_queries.jsonl"
_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub("", text)


class _HTMLUnits(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.units: list[str] = []
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("p", "h1", "h2", "h3", "h4", "tr", "li", "td", "th"):
            self._flush()

    def handle_endtag(self, tag):
        if tag in ("p", "h1", "h2", "h3", "h4", "tr", "li"):
            self._flush()

    def handle_data(self, data):
        self._buf.append(data)

    def _flush(self):
        if "".join(self._buf).strip():
            self.units.append("".join(self._buf))
        self._buf = []


def raw_units(path: Path) -> list[str]:
    ext = path.suffix.lower()
    if ext in (".md", ".txt"):
        return [p for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if p.strip()]
    if ext == ".html":
        parser = _HTMLUnits()
        parser.feed(path.read_text(encoding="utf-8"))
        parser._flush()
        return parser.units
    if ext == ".pdf":
        from pypdf import PdfReader

        return [page.extract_text() or "" for page in PdfReader(str(path)).pages]
    if ext == ".docx":
        import docx

        document = docx.Document(str(path))
        units = [p.text for p in document.paragraphs]
        for table in document.tables:
            units += ["\t".join(c.text for c in row.cells) for row in table.rows]
        return units
    if ext == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return ["\t".join(row) for row in csv.reader(f)]
    if ext == ".xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(str(path), read_only=True, data_only=True)
        units = [
            "\t".join("" if v is None else str(v) for v in row)
            for ws in wb.worksheets
            for row in ws.iter_rows(values_only=True)
        ]
        wb.close()
        return units
    raise ValueError(f"unsupported {path}")


def project_chunks(path: Path) -> list[str] | None:
    try:
        from knowledge_base.chunking import chunk_document
        from knowledge_base.loaders import load_document
    except ImportError:
        return None
    doc = load_document(path)
    return [doc.text[s.start : s.end] for s in chunk_document(doc)]


def main() -> int:
    queries = [json.loads(line) for line in QUERIES.read_text(encoding="utf-8").splitlines() if line.strip()]
    failures, ids, cache = [], set(), {}
    for q in queries:
        where = f"{q.get('id')} «{q.get('query')}»"
        if not {"id", "query", "positives", "doc", "answer_contains"} <= q.keys():
            failures.append(f"{where}: missing keys")
            continue
        if q["id"] in ids:
            failures.append(f"{where}: duplicate id")
        ids.add(q["id"])
        path = ROOT / q["doc"]
        if not path.is_file():
            failures.append(f"{where}: no document {q['doc']}")
            continue
        if not path.with_name(path.name + ".meta.yaml").is_file():
            failures.append(f"{where}: no sidecar for {q['doc']}")
        if q["doc"] not in cache:
            cache[q["doc"]] = ([squash(u) for u in raw_units(path)], project_chunks(path))
        units, chunks = cache[q["doc"]]
        needles = [squash(a) for a in q["answer_contains"]]
        if not needles or not all(needles):
            failures.append(f"{where}: empty answer_contains")
            continue
        if not any(all(n in u for n in needles) for u in units):
            failures.append(f"{where}: {q['answer_contains']} not in one unit of the raw text of {q['doc']}")
        if chunks is not None and not any(all(n in squash(c) for n in needles) for c in chunks):
            failures.append(f"{where}: {q['answer_contains']} not in one chunk of {q['doc']}")
    docs = [p for p in ROOT.rglob("*") if p.is_file() and not p.name.endswith((".meta.yaml", ".py"))]
    print(
        f"{len(queries)} queries over {len(cache)} gold documents ({len(docs)} documents in the set); {len(failures)} failures"
    )
    for failure in failures:
        print("  FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
