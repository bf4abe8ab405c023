"""Incremental ingestion: content hashes decide what is skipped, replaced or removed; a file that fails
is reported with a Chinese reason and the rest go on. Chunks of many files are embedded together so
ingestion runs close to the model's raw batch throughput."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from knowledge_base.catalog import Catalog
from knowledge_base.chunking import DEFAULT_MAX_CHARS, make_chunks
from knowledge_base.documents import Chunk, DocumentInfo
from knowledge_base.embedder import Embedder
from knowledge_base.keyword_index import ChineseTokenizer, join_tokens
from knowledge_base.loaders import LoaderError, is_supported, load_document
from knowledge_base.metadata import (
    FOLDER_META,
    SIDECAR_SUFFIX,
    folder_metadata,
    read_yaml,
    resolve,
    sidecar_path,
)
from knowledge_base.vector_index import ChromaVectorIndex

Progress = Callable[[int, int, str], None]  # (files done, files total, path as ingested)
EMBED_BATCH_CHUNKS = 256


class FailedFile(TypedDict):
    path: str
    reason: str


class IngestReport(TypedDict):
    added: int
    updated: int
    unchanged: int
    removed: int
    failed: list[FailedFile]


@dataclass(frozen=True)
class _Source:
    file: Path
    rel_path: str  # path as ingested (POSIX, relative to the folder given, or the file name)
    root: Path


@dataclass
class _Pending:
    info: DocumentInfo
    root: str
    text: str
    chunks: list[Chunk]
    is_new: bool


def embedding_text(info: DocumentInfo, chunk: Chunk) -> str:
    """What the models see: the document title and section heading give a bare paragraph its context."""
    if info.title == info.path == chunk.doc_path and chunk.start == 0 and chunk.end == len(chunk.text):
        return chunk.text  # a bare passage named by its id: the id is no context
    context = [info.title]
    if chunk.locator.heading and chunk.locator.heading not in chunk.text:
        context.append(chunk.locator.heading)
    return "\n".join([*context, chunk.text])


def _ignored(path: Path) -> bool:
    name = path.name
    return name.startswith((".", "~$")) or name.endswith(SIDECAR_SUFFIX) or name == FOLDER_META


def discover(paths: Iterable[Path | str]) -> tuple[list[_Source], list[Path], list[FailedFile]]:
    """Expand folders (recursively, sorted) into files; returns sources, the folder roots, and failures."""
    sources: list[_Source] = []
    roots: list[Path] = []
    failed: list[FailedFile] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            root = path.resolve()
            roots.append(root)
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                rel = file.relative_to(root)
                if any(part.startswith(".") for part in rel.parts[:-1]) or _ignored(file):
                    continue
                sources.append(_Source(file, rel.as_posix(), root))
        elif path.is_file():
            if _ignored(path):
                continue
            sources.append(_Source(path.resolve(), path.name, path.resolve().parent))
        else:
            failed.append({"path": str(given), "reason": "路径不存在"})
    return sources, roots, failed


def content_hash(source: _Source) -> str:
    """Hash of the file and of the metadata that applies to it (a changed sidecar re-ingests the file)."""
    digest = hashlib.sha256(source.file.read_bytes())
    for meta in (sidecar_path(source.file), *_folder_meta_files(source)):
        if meta.is_file():
            digest.update(b"\0meta\0" + meta.read_bytes())
    return digest.hexdigest()


def _folder_meta_files(source: _Source) -> list[Path]:
    files = []
    for folder in [source.file.parent, *source.file.parent.parents]:
        files.append(folder / FOLDER_META)
        if folder == source.root:
            break
    return files


class Ingestor:
    def __init__(
        self,
        *,
        catalog: Catalog,
        vectors: ChromaVectorIndex,
        embedder: Embedder,
        tokenizer: ChineseTokenizer,
        max_chunk_chars: int = DEFAULT_MAX_CHARS,
        batch_chunks: int = EMBED_BATCH_CHUNKS,
    ):
        self.catalog, self.vectors, self.embedder, self.tokenizer = catalog, vectors, embedder, tokenizer
        self.max_chunk_chars = max_chunk_chars
        self.batch_chunks = batch_chunks

    def ingest(self, paths: Sequence[Path | str], progress: Progress | None = None) -> IngestReport:
        report: IngestReport = {"added": 0, "updated": 0, "unchanged": 0, "removed": 0, "failed": []}
        sources, roots, failed = discover(paths)
        report["failed"].extend(failed)
        known = self.catalog.hashes()
        seen: set[str] = set()
        pending: list[_Pending] = []
        total = len(sources)
        for done, source in enumerate(sources, start=1):
            seen.add(source.rel_path)
            try:
                item = self._prepare(source, known)
            except LoaderError as exc:
                report["failed"].append({"path": source.rel_path, "reason": exc.reason})
                item = None
            except OSError as exc:
                report["failed"].append(
                    {"path": source.rel_path, "reason": f"无法读取文件：{exc.strerror or exc}"}
                )
                item = None
            if item == "unchanged":
                report["unchanged"] += 1
            elif item is not None:
                pending.append(item)
                if sum(len(p.chunks) for p in pending) >= self.batch_chunks:
                    self._flush(pending, report)
                    pending = []
            if progress is not None:
                progress(done, total, source.rel_path)
        self._flush(pending, report)
        for root in roots:
            for path, (_, doc_root) in known.items():
                if doc_root == str(root) and path not in seen:
                    self.vectors.delete(self.catalog.delete_document(path))
                    report["removed"] += 1
        return report

    def _prepare(self, source: _Source, known: dict[str, tuple[str, str]]) -> _Pending | str:
        if not is_supported(source.file):
            load_document(source.file)  # raises LoaderError naming the supported formats
        digest = content_hash(source)
        previous = known.get(source.rel_path)
        if previous is not None and previous[0] == digest:
            return "unchanged"
        loaded = load_document(source.file)
        meta = resolve(
            loaded,
            rel_path=source.rel_path,
            sidecar=read_yaml(sidecar_path(source.file)),
            folder_meta=folder_metadata(source.file, source.root),
        )
        info = DocumentInfo(
            path=source.rel_path,
            title=meta.title,
            date=meta.date,
            doc_type=meta.doc_type,
            content_hash=digest,
            industry=meta.industry,
            product=meta.product,
            visibility=meta.visibility,
            supersedes=meta.supersedes,
        )
        chunks = make_chunks(loaded, doc_path=info.path, content_hash=digest, max_chars=self.max_chunk_chars)
        if not chunks:
            raise LoaderError("文件中没有可检索的文字")
        return _Pending(info, str(source.root), loaded.text, chunks, is_new=previous is None)

    def _flush(self, pending: list[_Pending], report: IngestReport) -> None:
        if not pending:
            return
        texts = [embedding_text(p.info, c) for p in pending for c in p.chunks]
        try:
            vectors = self.embedder.embed_passages(texts)
        except Exception as exc:  # the model or endpoint failed: these files fail, the run goes on
            for p in pending:
                report["failed"].append({"path": p.info.path, "reason": f"向量化失败：{exc}"})
            return
        tokens = [join_tokens(self.tokenizer.tokens(t)) for t in texts]
        items, offset = [], 0
        for p in pending:
            end = offset + len(p.chunks)
            items.append((p.info, p.root, p.text, p.chunks, tokens[offset:end]))
            offset = end
        gone = self.catalog.replace_documents(items)
        if gone:
            self.vectors.delete(gone)
        self.vectors.upsert(
            [c.id for p in pending for c in p.chunks],
            vectors,
            [_vector_metadata(p.info) for p in pending for _ in p.chunks],
        )
        for p in pending:
            report["added" if p.is_new else "updated"] += 1


def _vector_metadata(info: DocumentInfo) -> dict:
    return {"doc_path": info.path, "doc_type": info.doc_type, "industry": info.industry, "date": info.date}


def add_passages(
    ingestor: Ingestor, passages: Iterable[Mapping[str, object]], *, batch_size: int = 512
) -> int:
    """Bare passages as one-chunk documents (path = passage id), embedded in large batches."""
    from knowledge_base.documents import Locator

    batch: list[_Pending] = []
    report: IngestReport = {"added": 0, "updated": 0, "unchanged": 0, "removed": 0, "failed": []}
    for passage in passages:
        pid, text = str(passage["id"]), str(passage.get("text") or "")
        if not text.strip():
            continue
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        info = DocumentInfo(
            path=pid, title=str(passage.get("title") or pid), date=None, doc_type="other", content_hash=digest
        )
        chunk_hash = hashlib.sha256(f"{pid}\0{digest}".encode()).hexdigest()[:16]
        chunk = Chunk(
            id=f"c_{chunk_hash}", doc_path=pid, text=text, start=0, end=len(text), locator=Locator()
        )
        batch.append(_Pending(info, "passages", text, [chunk], is_new=True))
        if len(batch) >= batch_size:
            ingestor._flush(batch, report)
            batch = []
    ingestor._flush(batch, report)
    return report["added"] + report["updated"]
