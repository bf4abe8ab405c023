"""The catalogue: documents (with their full extracted text, so citations can be verified) and chunks,
stored with SQLAlchemy Core on an ``Engine`` passed in (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from knowledge_base.documents import Chunk, DocumentInfo, Locator

metadata = sa.MetaData()

kb_documents = sa.Table(
    "kb_documents",
    metadata,
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("root", sa.String(2048), nullable=False, index=True),  # absolute folder it was ingested from
    sa.Column("title", sa.String(512), nullable=False),
    sa.Column("date", sa.String(10)),
    sa.Column("doc_type", sa.String(32), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("industry", sa.String(128)),
    sa.Column("product", sa.String(256)),
    sa.Column("visibility", sa.JSON, nullable=False),
    sa.Column("supersedes", sa.String(1024)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
)

kb_chunks = sa.Table(
    "kb_chunks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "doc_path", sa.String(1024), sa.ForeignKey("kb_documents.path", ondelete="CASCADE"), index=True
    ),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("start_offset", sa.Integer, nullable=False),
    sa.Column("end_offset", sa.Integer, nullable=False),
    sa.Column("page", sa.Integer),
    sa.Column("section", sa.String(64)),
    sa.Column("heading", sa.String(512)),
    sa.Column("paragraph", sa.Integer),
    sa.Column("row", sa.Integer),
    sa.Column("sheet", sa.String(256)),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column(
        "tokens", sa.Text, nullable=False
    ),  # space-joined BM25 tokens, so a new process need not re-cut
)

kb_terms = sa.Table(
    "kb_terms",
    metadata,
    sa.Column("term", sa.String(128), primary_key=True),
)

# One counter bumped by every write, so a search can tell in one primary-key read whether the catalogue
# changed (also when another process ingested) instead of counting 100k rows each time.
kb_state = sa.Table(
    "kb_state",
    metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)
_VERSION = "version"
_INSTANCE = "instance"  # a random number drawn once per catalogue: tells saved indexes of two databases apart


def _bump(conn: sa.Connection) -> None:
    conn.execute(kb_state.update().where(kb_state.c.key == _VERSION).values(value=kb_state.c.value + 1))


def _document(row) -> DocumentInfo:
    return DocumentInfo(
        path=row.path,
        title=row.title,
        date=row.date,
        doc_type=row.doc_type,
        content_hash=row.content_hash,
        industry=row.industry,
        product=row.product,
        visibility=tuple(row.visibility or ("all",)),
        supersedes=row.supersedes,
    )


def _chunk(row) -> Chunk:
    locator = Locator(
        page=row.page,
        section=row.section,
        heading=row.heading,
        paragraph=row.paragraph,
        row=row.row,
        sheet=row.sheet,
    )
    return Chunk(
        id=row.id,
        doc_path=row.doc_path,
        text=row.text,
        start=row.start_offset,
        end=row.end_offset,
        locator=locator,
        fields=dict(row.fields or {}),
    )


_DOC_COLUMNS = [c for c in kb_documents.c if c.name != "text"]


def _revision(row) -> str:
    """A document's content hash and when it was written: the keyword index re-reads a document whose
    revision changed, also one written again with the same hash (a passage with a new title: the title is
    in its tokens, not in its hash)."""
    return f"{row.content_hash}@{row.ingested_at}"


# read as the stored text: parsing 100k datetimes only to print them again costs ~1 s
_INGESTED_AT_TEXT = sa.cast(kb_documents.c.ingested_at, sa.String).label("ingested_at")


class Catalog:
    def __init__(self, engine: Engine):
        self.engine = engine
        metadata.create_all(engine)
        for key, value in ((_VERSION, 0), (_INSTANCE, secrets.randbelow(2**31 - 1) + 1)):
            if self._state(key) is None:
                try:
                    with engine.begin() as conn:
                        conn.execute(kb_state.insert().values(key=key, value=value))
                except sa.exc.IntegrityError:  # another process created it first
                    pass

    def _state(self, key: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(kb_state.c.value).where(kb_state.c.key == key)).scalar()

    def version(self) -> int | None:
        """Bumped by every change to documents, chunks or terms."""
        return self._state(_VERSION)

    def instance(self) -> int | None:
        """Drawn once when the catalogue is created; with ``version`` it names one catalogue state."""
        return self._state(_INSTANCE)

    # ------------------------------------------------------------------ documents
    def hashes(self) -> dict[str, tuple[str, str]]:
        """path -> (content hash, root) of every document."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(kb_documents.c.path, kb_documents.c.content_hash, kb_documents.c.root)
            )
            return {r.path: (r.content_hash, r.root) for r in rows}

    def revisions(self) -> dict[str, str]:
        """path -> revision (see ``_revision``) of every document."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(kb_documents.c.path, kb_documents.c.content_hash, _INGESTED_AT_TEXT)
            )
            return {r.path: _revision(r) for r in rows}

    def documents(self) -> list[DocumentInfo]:
        with self.engine.connect() as conn:
            return [
                _document(r) for r in conn.execute(sa.select(*_DOC_COLUMNS).order_by(kb_documents.c.path))
            ]

    def document(self, path: str) -> DocumentInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_DOC_COLUMNS).where(kb_documents.c.path == path)).first()
        return _document(row) if row else None

    def document_text(self, path: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(kb_documents.c.text).where(kb_documents.c.path == path)).scalar()

    def replace_documents(
        self, items: list[tuple[DocumentInfo, str, str, list[Chunk], list[str]]]
    ) -> list[str]:
        """Insert or replace documents and all their chunks in one transaction.

        ``items``: (info, root, full text, chunks, BM25 token strings). Returns the ids of chunks that
        existed before and are gone now (to delete from the vector store)."""
        if not items:
            return []
        paths = [info.path for info, *_ in items]
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            old_ids: set[str] = set()
            for start in range(0, len(paths), 500):
                part = paths[start : start + 500]
                old_ids.update(
                    conn.execute(sa.select(kb_chunks.c.id).where(kb_chunks.c.doc_path.in_(part))).scalars()
                )
                conn.execute(kb_chunks.delete().where(kb_chunks.c.doc_path.in_(part)))
                conn.execute(kb_documents.delete().where(kb_documents.c.path.in_(part)))
            conn.execute(
                kb_documents.insert(),
                [
                    {
                        "path": info.path,
                        "root": root,
                        "title": info.title,
                        "date": info.date,
                        "doc_type": info.doc_type,
                        "content_hash": info.content_hash,
                        "industry": info.industry,
                        "product": info.product,
                        "visibility": list(info.visibility),
                        "supersedes": info.supersedes,
                        "text": text,
                        "ingested_at": now,
                    }
                    for info, root, text, _, _ in items
                ],
            )
            rows = [
                {
                    "id": c.id,
                    "doc_path": c.doc_path,
                    "ordinal": n,
                    "text": c.text,
                    "start_offset": c.start,
                    "end_offset": c.end,
                    "page": c.locator.page,
                    "section": c.locator.section,
                    "heading": c.locator.heading,
                    "paragraph": c.locator.paragraph,
                    "row": c.locator.row,
                    "sheet": c.locator.sheet,
                    "fields": dict(c.fields),
                    "tokens": toks,
                }
                for _, _, _, chunks, tokens in items
                for n, (c, toks) in enumerate(zip(chunks, tokens, strict=True))
            ]
            if rows:
                conn.execute(kb_chunks.insert(), rows)
            _bump(conn)
        new_ids = {r["id"] for r in rows}
        return sorted(old_ids - new_ids)

    def delete_document(self, path: str) -> list[str]:
        """Remove a document; returns the ids of its chunks (for the vector index)."""
        with self.engine.begin() as conn:
            ids = list(conn.execute(sa.select(kb_chunks.c.id).where(kb_chunks.c.doc_path == path)).scalars())
            conn.execute(kb_chunks.delete().where(kb_chunks.c.doc_path == path))
            conn.execute(kb_documents.delete().where(kb_documents.c.path == path))
            _bump(conn)
        return ids

    def chunk_ids(self, path: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(kb_chunks.c.id).where(kb_chunks.c.doc_path == path)).scalars())

    # ------------------------------------------------------------------ chunks
    def get_chunk(self, chunk_id: str) -> Chunk | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(kb_chunks).where(kb_chunks.c.id == chunk_id)).first()
        return _chunk(row) if row else None

    def get_chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        ids = list(ids)
        out: dict[str, Chunk] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(sa.select(kb_chunks).where(kb_chunks.c.id.in_(ids[start : start + 500])))
                out.update((r.id, _chunk(r)) for r in rows)
        return out

    def iter_chunk_tokens(self, batch: int = 5000) -> Iterator[tuple[str, str, str, str]]:
        """(chunk id, doc path, document revision, tokens) of every chunk, in a stable order."""
        query = self._tokens_query().order_by(kb_chunks.c.id)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            for row in result:
                yield row.id, row.doc_path, _revision(row), row.tokens

    def chunk_tokens(
        self, *, paths: Iterable[str] = (), ids: Iterable[str] = ()
    ) -> list[tuple[str, str, str, str]]:
        """Like ``iter_chunk_tokens``, for the chunks of ``paths`` and the chunks ``ids`` (each once)."""
        out: dict[str, tuple[str, str, str, str]] = {}
        with self.engine.connect() as conn:
            for column, values in (
                (kb_chunks.c.doc_path, sorted(set(paths))),
                (kb_chunks.c.id, sorted(set(ids))),
            ):
                for start in range(0, len(values), 500):
                    query = self._tokens_query().where(column.in_(values[start : start + 500]))
                    for row in conn.execute(query):
                        out[row.id] = (row.id, row.doc_path, _revision(row), row.tokens)
        return [out[k] for k in sorted(out)]

    @staticmethod
    def _tokens_query() -> sa.Select:
        return sa.select(
            kb_chunks.c.id,
            kb_chunks.c.doc_path,
            kb_documents.c.content_hash,
            _INGESTED_AT_TEXT,
            kb_chunks.c.tokens,
        ).join(kb_documents, kb_documents.c.path == kb_chunks.c.doc_path)

    def chunks_containing(self, terms: Iterable[str]) -> list[tuple[str, str]]:
        """(id, text) of chunks whose text contains any of ``terms`` (to re-cut after the dictionary grows)."""
        terms = list(terms)
        if not terms:
            return []
        with self.engine.connect() as conn:
            return [
                (r.id, r.text) for r in conn.execute(_containing(terms, kb_chunks.c.id, kb_chunks.c.text))
            ]

    def counts(self) -> dict[str, object]:
        with self.engine.connect() as conn:
            documents = conn.execute(sa.select(sa.func.count()).select_from(kb_documents)).scalar() or 0
            chunks = conn.execute(sa.select(sa.func.count()).select_from(kb_chunks)).scalar() or 0
            by_type = dict(
                conn.execute(
                    sa.select(kb_documents.c.doc_type, sa.func.count()).group_by(kb_documents.c.doc_type)
                ).all()
            )
        return {"documents": documents, "chunks": chunks, "by_type": by_type}

    # ------------------------------------------------------------------ dictionary terms
    def terms(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(kb_terms.c.term).order_by(kb_terms.c.term)).scalars())

    def add_terms(self, terms: Iterable[str], recut: Recut | None = None) -> list[str]:
        """Store new dictionary terms; returns those that were not known yet.

        ``recut(terms, chunks, documents)`` returns new BM25 tokens for the chunks whose text contains
        a new term, cut with ``terms`` (every term: also those another process added since this one last
        read them); they are stored in the same transaction, so no reader sees the new terms with the old
        tokens (the keyword index re-reads exactly those chunks when it sees new terms)."""
        known = set(self.terms())
        new = sorted({t.strip() for t in terms if t and t.strip()} - known)
        if new:
            with self.engine.begin() as conn:
                conn.execute(kb_terms.insert(), [{"term": t} for t in new])
                if recut is not None:
                    every = list(conn.execute(sa.select(kb_terms.c.term)).scalars())
                    chunks = [_chunk(r) for r in conn.execute(_containing(new, *kb_chunks.c))]
                    paths = sorted({c.doc_path for c in chunks})
                    docs = {}
                    for start in range(0, len(paths), 500):
                        part = kb_documents.c.path.in_(paths[start : start + 500])
                        docs.update(
                            (r.path, _document(r)) for r in conn.execute(sa.select(*_DOC_COLUMNS).where(part))
                        )
                    tokens = recut(every, chunks, docs) if chunks else {}
                    if tokens:
                        conn.execute(
                            kb_chunks.update()
                            .where(kb_chunks.c.id == sa.bindparam("cid"))
                            .values(tokens=sa.bindparam("tok")),
                            [{"cid": k, "tok": v} for k, v in tokens.items()],
                        )
                _bump(conn)
        return new


Recut = Callable[[list[str], list[Chunk], dict[str, DocumentInfo]], dict[str, str]]


def _containing(terms: list[str], *columns) -> sa.Select:
    condition = sa.or_(*(kb_chunks.c.text.contains(t, autoescape=True) for t in terms))
    return sa.select(*columns).where(condition)
