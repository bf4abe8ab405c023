"""BM25 over jieba ``cut_for_search`` tokens, with CJK character bigrams as a fallback for words the
dictionary splits badly (colloquial or mistyped questions: "客户嫌贵咋回"), and a user dictionary hook
for CRM product, competitor and customer names.

The index is a list of immutable segments (``bm25_segments``): a write adds a segment with the new chunks
and marks the replaced ones dead, small segments are merged, and the whole is saved to a folder (a
manifest naming the segments and their dead chunks) so that a restarted process, or another one, loads
it and only indexes what changed since.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowledge_base import bm25_segments as segs
from knowledge_base.bm25_segments import Entry, Segment

logger = logging.getLogger(__name__)
INDEX_FORMAT = 2  # bump when what ``KeywordIndex.save`` writes changes
MANIFEST = "manifest.json"
MAX_SEGMENTS = 8  # more than this: the small segments are merged into one
MAX_DEAD_SHARE = 0.2  # more dead chunks than this share: everything is merged and the dead dropped
GC_GRACE_S = 600.0  # a saved segment no manifest names is deleted this long after it was last named

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORDLIKE = re.compile(r"[0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_STOPWORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "也",
        "就",
        "都",
        "而",
        "把",
        "被",
        "让",
        "给",
        "对",
        "从",
        "向",
        "这",
        "那",
        "之",
        "其",
        "我",
        "你",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "他们",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "哦",
        "嗯",
        "么",
        "啦",
        "着",
        "过",
        "一个",
        "这个",
        "那个",
        "有",
        "没",
        "请问",
        "请",
        "一下",
        "可以",
        "怎么",
        "怎样",
        "如何",
        "什么",
        "为什么",
        "是不是",
        "能不能",
        "哪里",
        "哪些",
        "多少",
        "咋",
        "咋办",
        "怎么办",
        "怎么样",
        "你好",
        "您好",
        "客户",  # in a sales knowledge base nearly every paragraph names the customer
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "and",
        "or",
        "is",
        "are",
        "be",
        "for",
        "on",
        "with",
        "at",
        "by",
        "it",
        "this",
        "that",
    ]
)
BIGRAM_MARK = "~"  # bigram and character tokens live in their own namespaces so they do not
CHAR_MARK = "#"  # double-count words; characters catch typos and paraphrases ("咋回" vs "怎么回复")


class ChineseTokenizer:
    """jieba with its own dictionary instance, so terms added for one knowledge base stay there."""

    def __init__(self, terms: Iterable[str] = ()):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        self._lock = threading.Lock()
        self.add_terms(terms)

    def add_terms(self, terms: Iterable[str]) -> None:
        with self._lock:
            for term in terms:
                term = term.strip().lower()  # text is lower-cased before cutting
                if term:
                    self._jieba.add_word(term, freq=max(2000, 100 * len(term)))

    def tokens(self, text: str) -> list[str]:
        text = text.lower()
        with self._lock:  # jieba's lazy initialisation is not thread-safe
            words = self._jieba.lcut_for_search(text)
        out = [w for w in (w.strip() for w in words) if w and w not in _STOPWORDS and _WORDLIKE.search(w)]
        for run in _CJK.findall(text):
            bigrams = (run[i : i + 2] for i in range(len(run) - 1))
            out.extend(BIGRAM_MARK + bigram for bigram in bigrams if bigram not in _STOPWORDS)
            out.extend(CHAR_MARK + char for char in run)
        return out


@dataclass(frozen=True)
class SyncPoint:
    """The catalogue state an index reflects: its instance, version and dictionary terms."""

    instance: int
    version: int
    terms: frozenset[str] = frozenset()


@dataclass(frozen=True, eq=False)
class _Part:
    """A segment as one index state sees it."""

    seg: Segment
    live: np.ndarray | None  # bool per local chunk; None = all live
    l2g: np.ndarray  # int32: local token -> global token id
    g2l: np.ndarray  # int32: global token id -> local (-1 = absent), up to the segment's largest id
    doc_codes: np.ndarray  # int32: local chunk -> global document code
    df: np.ndarray  # live chunks per local token


@dataclass(frozen=True, eq=False)
class _State:
    """Everything a search reads, swapped in one assignment (searches never see half an update)."""

    parts: tuple[_Part, ...]
    offsets: tuple[int, ...]
    norms: tuple[np.ndarray, ...]  # per part: the length normalisation of each chunk (live average length)
    ids: list[str]  # chunk id of each position (the parts' chunks, in order)
    doc_codes: np.ndarray
    dead: np.ndarray | None  # bool per position, None = none
    idf: np.ndarray  # per global token id
    vocab: dict[str, int]  # append-only: ids above len(idf) belong to later states
    doc_lookup: dict[str, int]  # append-only
    n_live: int


class KeywordIndex:
    """In-memory BM25 over pre-cut token strings, updated incrementally (``update``) and saved to / loaded
    from a folder (``save`` / ``load``)."""

    def __init__(
        self,
        tokenizer: ChineseTokenizer,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        max_segments: int = MAX_SEGMENTS,
        max_dead_share: float = MAX_DEAD_SHARE,
        gc_grace_s: float = GC_GRACE_S,
    ):
        self.tokenizer = tokenizer
        self.k1, self.b = k1, b
        self.max_segments, self.max_dead_share, self.gc_grace_s = max_segments, max_dead_share, gc_grace_s
        self.synced: SyncPoint | None = None
        self._write_lock = threading.Lock()
        self._state = self._make_state([], [], {}, {})
        self._query_cache: dict[str, list[str]] = {}  # search and matched_terms cut a query once
        self._rejected: dict | None = None  # a manifest ``load`` could not use: ``save`` replaces it

    def __len__(self) -> int:
        return self._state.n_live

    @property
    def segments(self) -> int:
        return len(self._state.parts)

    # ------------------------------------------------------------------ writing
    def build(self, entries: Iterable[Entry]) -> None:
        """Replace the whole index with ``entries`` (chunk id, doc path, doc revision, space-joined tokens)."""
        seg = segs.build_segment(entries)
        with self._write_lock:
            self._state = self._make_state([seg] if len(seg) else [], [None] if len(seg) else [], {}, {})
            self._query_cache = {}

    def update(
        self,
        add: Iterable[Entry] = (),
        *,
        remove_docs: Iterable[str] = (),
        remove_ids: Iterable[str] = (),
        synced: SyncPoint | None = None,
    ) -> None:
        """Mark the chunks of ``remove_docs`` and the chunks ``remove_ids`` dead, then index ``add`` as a
        new segment; merge segments when there are too many or too many dead chunks."""
        with self._write_lock:
            state = self._state
            dead = np.zeros(len(state.ids), dtype=bool) if state.dead is None else state.dead.copy()
            codes = [state.doc_lookup[p] for p in set(remove_docs) if p in state.doc_lookup]
            if codes:
                dead |= np.isin(state.doc_codes, codes)
            remove_ids = set(remove_ids)
            if remove_ids:
                hits = [n for n, cid in enumerate(state.ids) if cid in remove_ids]
                dead[hits] = True
            new = segs.build_segment(add)
            killed = dead.any() if state.dead is None else not np.array_equal(dead, state.dead)
            if not len(new) and not killed:
                self.synced = synced or self.synced  # nothing indexed changed...
                self._query_cache = {}  # ...but the dictionary may have grown: queries are cut again
                return
            segments = [p.seg for p in state.parts]
            lives = [~dead[o : o + len(p.seg)] for p, o in zip(state.parts, state.offsets, strict=True)]
            if len(new):
                segments.append(new)
                lives.append(np.ones(len(new), dtype=bool))
            segments, lives = self._compact(segments, lives)
            reuse = {id(p.seg): p for p in state.parts}
            self._state = self._make_state(segments, lives, state.vocab, state.doc_lookup, reuse)
            if synced is not None:
                self.synced = synced
            self._query_cache = {}  # the dictionary may have grown since

    def _compact(
        self, segments: list[Segment], lives: list[np.ndarray]
    ) -> tuple[list[Segment], list[np.ndarray | None]]:
        total = sum(len(s) for s in segments)
        n_dead = sum(int((~live).sum()) for live in lives)
        if total and n_dead > self.max_dead_share * total:
            merged = segs.merge(segments, lives)
            return ([merged], [None]) if len(merged) else ([], [])
        if len(segments) > self.max_segments:  # keep the largest, merge the rest (which are small)
            big = max(range(len(segments)), key=lambda n: len(segments[n]))
            rest = [n for n in range(len(segments)) if n != big]
            merged = segs.merge([segments[n] for n in rest], [lives[n] for n in rest])
            live = None if lives[big].all() else lives[big]
            return ([segments[big], merged], [live, None]) if len(merged) else ([segments[big]], [live])
        kept = [n for n in range(len(segments)) if lives[n].any()]  # drop segments with no live chunk
        return [segments[n] for n in kept], [None if lives[n].all() else lives[n] for n in kept]

    def _make_state(
        self,
        segments: Sequence[Segment],
        lives: Sequence[np.ndarray | None],
        vocab: dict[str, int],
        doc_lookup: dict[str, int],
        reuse: dict[int, _Part] | None = None,
    ) -> _State:
        """Global statistics over the live chunks and the per-posting tf components they imply."""
        parts: list[_Part] = []
        for seg, live in zip(segments, lives, strict=True):
            old = (reuse or {}).get(id(seg))
            if old is not None:
                same_live = (old.live is None and live is None) or (
                    old.live is not None and live is not None and np.array_equal(old.live, live)
                )
                df = old.df if same_live else segs.live_df(seg, live)
                parts.append(_Part(seg, live, old.l2g, old.g2l, old.doc_codes, df))
                continue
            l2g = np.fromiter(
                (vocab.setdefault(t, len(vocab)) for t in seg.vocab), dtype=np.int32, count=len(seg.vocab)
            )
            g2l = np.full(int(l2g.max()) + 1 if len(l2g) else 0, -1, dtype=np.int32)
            g2l[l2g] = np.arange(len(l2g), dtype=np.int32)
            rows = np.asarray(
                [doc_lookup.setdefault(p, len(doc_lookup)) for p, _ in seg.docs], dtype=np.int32
            )
            doc_codes = rows[seg.doc_of] if len(seg) else np.zeros(0, dtype=np.int32)
            parts.append(_Part(seg, live, l2g, g2l, doc_codes, segs.live_df(seg, live)))
        df = np.zeros(len(vocab), dtype=np.int64)
        n_live, live_len = 0, 0.0
        for p in parts:
            df[p.l2g] += p.df
            lengths = p.seg.lengths if p.live is None else p.seg.lengths[p.live]
            n_live += len(lengths)
            live_len += float(lengths.sum(dtype=np.float64))
        avg_len = live_len / n_live if n_live else 1.0
        offsets, position = [], 0
        for p in parts:
            offsets.append(position)
            position += len(p.seg)
        dead = None
        if any(p.live is not None for p in parts):
            dead = np.concatenate([np.zeros(len(p.seg), bool) if p.live is None else ~p.live for p in parts])
        return _State(
            parts=tuple(parts),
            offsets=tuple(offsets),
            norms=tuple(segs.length_norm(p.seg, avg_len, self.k1, self.b) for p in parts),
            ids=[cid for p in parts for cid in p.seg.ids],
            doc_codes=(
                np.concatenate([p.doc_codes for p in parts]) if parts else np.zeros(0, dtype=np.int32)
            ),
            dead=dead,
            idf=segs.idf(df, n_live),
            vocab=vocab,
            doc_lookup=doc_lookup,
            n_live=n_live,
        )

    def doc_hashes(self) -> dict[str, str]:
        """Document path -> digest (the content hash or revision indexed with it) of every document with
        live chunks."""
        out: dict[str, str] = {}
        for p in self._state.parts:
            rows = p.seg.doc_of if p.live is None else p.seg.doc_of[p.live]
            for row in np.unique(rows):
                path, digest = p.seg.docs[int(row)]
                out[path] = digest
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path | str) -> bool:
        """Write the segments not saved yet and a manifest naming them with their dead chunks and the
        ``synced`` catalogue state (atomically: a reader sees the old manifest or the new one). A manifest
        of a newer catalogue state, saved by another process, is left alone (False)."""
        if self.synced is None:
            raise ValueError("an index is saved with the catalogue state it reflects (synced)")
        folder = Path(folder)
        with self._write_lock:  # the state and the catalogue version it reflects, as one pair
            state, synced = self._state, self.synced
        current = _read_manifest(folder)
        if (
            current
            and current != self._rejected
            and (current.get("format"), current.get("instance")) == (INDEX_FORMAT, synced.instance)
            and int(current.get("version", -1)) >= synced.version
        ):
            return False
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for p in state.parts:
            seg_dir = folder / p.seg.name if p.seg.name else None
            if seg_dir is not None and (seg_dir / "meta.json").is_file():
                os.utime(seg_dir)  # named again: not garbage (see _collect_garbage)
                names.append(p.seg.name)
            else:
                p.seg.name = None
                names.append(segs.save_segment(p.seg, folder))
        manifest = {
            "format": INDEX_FORMAT,
            "k1": self.k1,
            "b": self.b,
            "instance": synced.instance,
            "version": synced.version,
            "terms": sorted(synced.terms),
            "segments": [
                {"name": name, "dead": [] if p.live is None else np.flatnonzero(~p.live).tolist()}
                for name, p in zip(names, state.parts, strict=True)
            ],
        }
        tmp = folder / f".tmp-{os.getpid()}-{threading.get_ident()}-{MANIFEST}"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        # segments the replaced manifest named stop being named now (a process that has just read it
        # may be loading them): their grace starts now, before the replace, not when last saved
        _touch(folder, _segment_names(current) - set(names))
        os.replace(tmp, folder / MANIFEST)
        self._collect_garbage(folder, set(names))
        return True

    def _collect_garbage(self, folder: Path, keep: set[str]) -> None:
        """Delete what no manifest has named for ``gc_grace_s``: segments replaced by merges or written by
        a process whose manifest lost, unfinished temporary files, indexes of the previous format."""
        cutoff = time.time() - self.gc_grace_s
        for entry in folder.iterdir():
            if entry.name in keep or entry.name == MANIFEST:
                continue
            try:
                if entry.stat().st_mtime > cutoff:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            except OSError:
                continue

    def load(self, folder: Path | str, instance: int) -> bool:
        """Load the index saved for catalogue ``instance``; False (and nothing changed) when there is none
        or it is unreadable, so the caller indexes the catalogue."""
        folder = Path(folder)
        manifest = _read_manifest(folder)
        if not manifest:
            return False
        if (manifest.get("format"), manifest.get("instance")) != (INDEX_FORMAT, instance):
            return False
        if (manifest.get("k1"), manifest.get("b")) != (self.k1, self.b):
            self._rejected = manifest
            return False
        try:
            segments, lives = [], []
            for item in manifest["segments"]:
                seg = segs.load_segment(folder, str(item["name"]))
                live = None
                if item.get("dead"):
                    live = np.ones(len(seg), dtype=bool)
                    live[np.asarray(item["dead"], dtype=np.int64)] = False
                segments.append(seg)
                lives.append(live)
            synced = SyncPoint(instance, int(manifest["version"]), frozenset(manifest.get("terms") or ()))
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError) as exc:  # EOF: empty .npy
            logger.warning("BM25 index at %s unreadable, re-indexing: %s", folder, exc)
            self._rejected = manifest
            return False
        with self._write_lock:
            self._state = self._make_state(segments, lives, {}, {})
            self.synced = synced
            self._query_cache = {}
        return True

    # ------------------------------------------------------------------ search
    def query_tokens(self, query: str) -> list[str]:
        tokens = self._query_cache.get(query)
        if tokens is None:
            if len(self._query_cache) >= 256:
                self._query_cache.clear()
            tokens = self._query_cache[query] = self.tokenizer.tokens(query)
        return tokens

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every position (0 for dead chunks), or None when no query token is indexed."""
        return self._scores(self._state, query)

    def _scores(self, state: _State, query: str) -> np.ndarray | None:
        gids = [state.vocab.get(t) for t in dict.fromkeys(self.query_tokens(query))]
        found = np.asarray([g for g in gids if g is not None and g < len(state.idf)], dtype=np.int64)
        if len(found):
            found = found[state.idf[found] > 0]
        if not len(found):
            return None
        scores = np.zeros(len(state.ids), dtype=np.float32)
        for part, offset, norm in zip(state.parts, state.offsets, state.norms, strict=True):
            inside = found[found < len(part.g2l)]
            local = part.g2l[inside]
            spans = [
                (int(part.seg.indptr[t]), int(part.seg.indptr[t + 1]), state.idf[g])
                for t, g in zip(local, inside, strict=True)
                if t >= 0
            ]
            if not spans:
                continue
            n = len(part.seg)
            if len(spans) == 1:
                a, b, w = spans[0]
                scores[offset + part.seg.indices[a:b]] = segs.tf_component(part.seg, norm, a, b) * w
                continue
            idx = np.concatenate([part.seg.indices[a:b] for a, b, _ in spans])
            val = np.concatenate([segs.tf_component(part.seg, norm, a, b) * w for a, b, w in spans])
            scores[offset : offset + n] = np.bincount(idx, weights=val, minlength=n)
        if state.dead is not None:
            scores[state.dead] = 0.0
        return scores

    def search(self, query: str, k: int, *, allowed_docs: set[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (chunk id, BM25 score) among chunks of ``allowed_docs`` (None = all)."""
        if k <= 0:
            return []
        state = self._state
        scores = self._scores(state, query)
        if scores is None:
            return []
        if allowed_docs is not None:
            codes = [state.doc_lookup[d] for d in allowed_docs if d in state.doc_lookup]
            scores = np.where(np.isin(state.doc_codes, codes), scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(state.ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def matched_terms(self, query: str, text: str) -> tuple[str, ...]:
        """Query words (not bigrams) that occur in ``text``: shown to users as 命中词."""
        lowered = text.lower()
        words = [
            t
            for t in dict.fromkeys(self.query_tokens(query))
            if not t.startswith((BIGRAM_MARK, CHAR_MARK)) and (len(t) > 1 or t.isascii())
        ]
        return tuple(t for t in words if t in lowered)


def join_tokens(tokens: list[str]) -> str:
    return " ".join(tokens)


def _segment_names(manifest: dict | None) -> set[str]:
    try:
        return {str(item["name"]) for item in (manifest or {}).get("segments") or ()}
    except (TypeError, KeyError):
        return set()


def _touch(folder: Path, names: Iterable[str]) -> None:
    for name in names:
        try:
            os.utime(folder / Path(name).name)
        except OSError:
            continue


def _read_manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
