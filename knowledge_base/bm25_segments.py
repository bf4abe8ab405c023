"""Segments of the BM25 index: the postings of one batch of chunks, stored as term frequencies (not as
scores), immutable once written.

A write to the knowledge base adds a small segment with the new or re-cut chunks and marks the chunks it
replaces or removes as dead; nothing else is re-read or re-indexed. Scores are computed at query time
from the statistics of the live chunks of all segments (chunk count, average length, document frequency),
so they equal those of an index rebuilt from scratch. Small segments are merged, and dead chunks dropped,
by ``merge`` (Lucene's segments and tombstones, simplified).

Scoring is bm25s's "lucene" variant: ``idf(t) · tf / (tf + k1 · (1 − b + b · len / avg_len))`` with
``idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5))``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEGMENT_FORMAT = 1  # bump when what ``save_segment`` writes changes
SEGMENT_PREFIX = "seg-"
BUILD_BATCH = 4096  # chunks per vectorised step of ``build_segment``
TF_MAX = np.iinfo(np.uint16).max


@dataclass(eq=False, slots=True)
class Segment:
    """Postings of a batch of chunks in compressed-sparse-column form: the postings of local token ``t``
    are ``indices[indptr[t]:indptr[t+1]]`` (local chunk numbers, ascending) with frequencies ``tf``."""

    ids: list[str]  # chunk id of each local chunk
    docs: list[tuple[str, str]]  # (document path, content hash) table
    doc_of: np.ndarray  # int32: local chunk -> row of ``docs``
    lengths: np.ndarray  # float32: tokens per chunk (at least 1)
    vocab: list[str]  # local token id -> token; every token has at least one posting
    indptr: np.ndarray  # int64, len(vocab) + 1
    indices: np.ndarray  # int32 local chunk of each posting
    tf: np.ndarray  # uint16 term frequency of each posting
    name: str | None = None  # folder name, once saved

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def postings(self) -> int:
        return len(self.indices)


Entry = tuple[str, str, str, str]  # (chunk id, document path, document content hash, space-joined tokens)


def build_segment(entries: Iterable[Entry]) -> Segment:
    """Index ``entries``: the only place where token strings are read (see ``tokens_read``)."""
    ids: list[str] = []
    docs: list[tuple[str, str]] = []
    doc_rows: dict[tuple[str, str], int] = {}
    doc_of: list[int] = []
    vocab: dict[str, int] = {}
    lengths: list[int] = []
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per batch: (token, chunk, tf), by token
    batch_tokens: list[int] = []
    batch_lengths: list[int] = []

    def flush() -> None:
        if not batch_lengths:
            return
        start = len(lengths) - len(batch_lengths)
        tokens = np.asarray(batch_tokens, dtype=np.int64)
        chunk = np.repeat(np.arange(len(batch_lengths), dtype=np.int64), batch_lengths)
        keys, counts = np.unique(tokens * len(batch_lengths) + chunk, return_counts=True)
        parts.append(
            (
                (keys // len(batch_lengths)).astype(np.int32),
                (keys % len(batch_lengths) + start).astype(np.int32),
                np.minimum(counts, TF_MAX).astype(np.uint16),
            )
        )
        batch_tokens.clear()
        batch_lengths.clear()

    for chunk_id, doc_path, doc_hash, joined in entries:
        tokens = joined.split()
        ids.append(chunk_id)
        doc_of.append(doc_rows.setdefault((doc_path, doc_hash), len(doc_rows)))
        lengths.append(max(1, len(tokens)))
        batch_tokens.extend([vocab.setdefault(t, len(vocab)) for t in tokens])
        batch_lengths.append(len(tokens))
        _TOKENS_READ[0] += 1
        if len(batch_lengths) >= BUILD_BATCH:
            flush()
    flush()
    docs = sorted(doc_rows, key=doc_rows.__getitem__)
    indptr, indices, tf = _csc_from_sorted_parts(parts, len(vocab))
    return Segment(
        ids=ids,
        docs=docs,
        doc_of=np.asarray(doc_of, dtype=np.int32),
        lengths=np.asarray(lengths, dtype=np.float32),
        vocab=list(vocab),
        indptr=indptr,
        indices=indices,
        tf=tf,
    )


_TOKENS_READ = [0]  # chunks whose token strings ``build_segment`` has read (tests assert on it)


def tokens_read() -> int:
    return _TOKENS_READ[0]


def _csc_from_sorted_parts(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], n_tokens: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Postings of batches, each sorted by token and (within a token) by chunk, with the chunks of a
    later batch all after those of an earlier one -> one CSC, in O(postings) (a counting sort)."""
    counts = np.zeros(n_tokens, dtype=np.int64)
    for tokens, _, _ in parts:
        counts += np.bincount(tokens, minlength=n_tokens)
    indptr = np.zeros(n_tokens + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    tf = np.empty(int(indptr[-1]), dtype=np.uint16)
    cursor = indptr[:-1].copy()
    for tokens, chunks, freqs in parts:
        if not len(tokens):
            continue
        # rank of each posting among the postings of its token in this batch
        first = np.flatnonzero(np.r_[True, tokens[1:] != tokens[:-1]])
        group = np.repeat(first, np.diff(np.r_[first, len(tokens)]))
        pos = cursor[tokens] + (np.arange(len(tokens)) - group)
        indices[pos] = chunks
        tf[pos] = freqs
        cursor[tokens[first]] += np.diff(np.r_[first, len(tokens)])
    return indptr, indices, tf


def merge(segments: Sequence[Segment], lives: Sequence[np.ndarray]) -> Segment:
    """One segment with the live chunks of ``segments`` (in order); dead chunks and the tokens only they
    had are dropped. No token string is re-read."""
    vocab: dict[str, int] = {}
    ids: list[str] = []
    docs: list[tuple[str, str]] = []
    doc_rows: dict[tuple[str, str], int] = {}
    doc_of, lengths, tok_parts, chunk_parts, tf_parts = [], [], [], [], []
    base = 0
    for seg, live in zip(segments, lives, strict=True):
        keep = np.flatnonzero(live)
        if not len(keep):
            continue
        renumber = np.full(len(seg), -1, dtype=np.int64)
        renumber[keep] = np.arange(base, base + len(keep))
        rows = np.asarray([doc_rows.setdefault(d, len(doc_rows)) for d in seg.docs], dtype=np.int32)
        ids.extend(seg.ids[i] for i in keep)
        doc_of.append(rows[seg.doc_of[keep]])
        lengths.append(seg.lengths[keep])
        l2g = np.asarray([vocab.setdefault(t, len(vocab)) for t in seg.vocab], dtype=np.int32)
        tokens = np.repeat(l2g, np.diff(seg.indptr))
        alive = live[seg.indices]
        tok_parts.append(tokens[alive])
        chunk_parts.append(renumber[seg.indices[alive]].astype(np.int32))
        tf_parts.append(seg.tf[alive])
        base += len(keep)
    docs = sorted(doc_rows, key=doc_rows.__getitem__)
    if not ids:
        return build_segment([])
    tokens = np.concatenate(tok_parts)
    chunks = np.concatenate(chunk_parts)
    freqs = np.concatenate(tf_parts)
    order = np.argsort(tokens, kind="stable")  # chunks stay ascending within a token
    used, tokens = np.unique(tokens[order], return_inverse=True)
    names = list(vocab)
    indptr, indices, tf = _csc_from_sorted_parts(
        [(tokens.astype(np.int32), chunks[order], freqs[order])], len(used)
    )
    return Segment(
        ids=ids,
        docs=docs,
        doc_of=np.concatenate(doc_of).astype(np.int32),
        lengths=np.concatenate(lengths).astype(np.float32),
        vocab=[names[g] for g in used],
        indptr=indptr,
        indices=indices,
        tf=tf,
    )


# ------------------------------------------------------------------ scoring


def idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's idf (0 where no live chunk has the token)."""
    df = df.astype(np.float64)
    out = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    return np.where(df > 0, out, 0.0).astype(np.float32)


def length_norm(seg: Segment, avg_len: float, k1: float, b: float) -> np.ndarray:
    """``k1 (1 - b + b len / avg_len)`` of every chunk (float32). The tf component of a posting,
    ``tf / (tf + norm)``, is computed at query time for the postings of the query's tokens only: per
    chunk, not per posting, is what a write or a load has to recompute when the average length moves."""
    return (k1 * ((1.0 - b) + b * seg.lengths / np.float32(avg_len))).astype(np.float32)


def tf_component(seg: Segment, norm: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``tf / (tf + norm)`` of the postings ``start:stop`` (float32)."""
    tf = seg.tf[start:stop].astype(np.float32)
    return tf / (tf + norm[seg.indices[start:stop]])


def live_df(seg: Segment, live: np.ndarray | None) -> np.ndarray:
    """Per local token: how many live chunks of ``seg`` have it."""
    counts = np.diff(seg.indptr)
    if live is None or not len(counts):
        return counts
    # a sum per token over a uint8 mask (a cumulative sum over bools is ~100x slower in numpy)
    alive = live[seg.indices].view(np.uint8)
    starts = np.minimum(seg.indptr[:-1], max(len(alive) - 1, 0))
    sums = np.add.reduceat(alive, starts, dtype=np.int64) if len(alive) else np.zeros(len(counts), np.int64)
    return np.where(counts > 0, sums, 0)


# ------------------------------------------------------------------ persistence

_ARRAYS = ("doc_of", "lengths", "indptr", "indices", "tf")


def save_segment(seg: Segment, folder: Path) -> str:
    """Write ``seg`` to a new ``folder/seg-<uuid>`` (atomically) and return that name."""
    if seg.name is not None and (folder / seg.name / "meta.json").is_file():
        return seg.name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
    name = f"{SEGMENT_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        for field in _ARRAYS:
            np.save(tmp / f"{field}.npy", getattr(seg, field), allow_pickle=False)
        meta = {"format": SEGMENT_FORMAT, "ids": seg.ids, "docs": seg.docs, "vocab": seg.vocab}
        # meta.json last: a folder without it is incomplete
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        os.rename(tmp, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seg.name = name
    return name


def load_segment(folder: Path, name: str) -> Segment:
    """Raises OSError / ValueError / KeyError / EOFError when the folder is missing, incomplete or of another
    format."""
    source = folder / name
    meta = json.loads((source / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != SEGMENT_FORMAT:
        raise ValueError(f"segment format {meta.get('format')}")
    arrays = {f: np.load(source / f"{f}.npy", allow_pickle=False) for f in _ARRAYS}
    seg = Segment(
        ids=list(meta["ids"]),
        docs=[(str(p), str(h)) for p, h in meta["docs"]],
        vocab=list(meta["vocab"]),
        name=name,
        **arrays,
    )
    n = len(seg.ids)
    if not (
        len(seg.doc_of) == len(seg.lengths) == n
        and len(seg.indptr) == len(seg.vocab) + 1
        and int(seg.indptr[-1]) == len(seg.indices) == len(seg.tf)
        and (n == 0 or (len(seg.indices) == 0 or int(seg.indices.max()) < n))
    ):
        raise ValueError(f"segment {name} is inconsistent")
    return seg
