"""BM25 over jieba ``cut_for_search`` tokens, with CJK character bigrams as a fallback for words the
dictionary splits badly (colloquial or mistyped questions: "客户嫌贵咋回"), and a user dictionary hook
for CRM product, competitor and customer names."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)
INDEX_FORMAT = 1  # bump when what ``KeywordIndex.save`` writes changes

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


class KeywordIndex:
    """An in-memory BM25 index (bm25s) over pre-cut token strings; rebuilt as a whole when dirty, and
    saved to / loaded from a folder so a restarted process does not rebuild it (minutes at 100k chunks).
    """

    def __init__(self, tokenizer: ChineseTokenizer, *, k1: float = 1.2, b: float = 0.75):
        self.tokenizer = tokenizer
        self.k1, self.b = k1, b
        self._model = None
        self._ids: list[str] = []
        self._doc_codes = np.zeros(0, dtype=np.int32)
        self._doc_lookup: dict[str, int] = {}
        self._query_cache: dict[str, list[str]] = {}  # search and matched_terms cut a query once

    def __len__(self) -> int:
        return len(self._ids)

    def build(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """``entries``: (chunk id, doc path, space-joined tokens)."""
        import bm25s

        ids, codes, corpus = [], [], []
        lookup: dict[str, int] = {}
        for chunk_id, doc_path, tokens in entries:
            ids.append(chunk_id)
            codes.append(lookup.setdefault(doc_path, len(lookup)))
            corpus.append(tokens.split() or ["\u0000"])
        model = None
        if corpus:
            model = bm25s.BM25(k1=self.k1, b=self.b)
            model.index(corpus, show_progress=False)
        self._install(model, ids, lookup, np.asarray(codes, dtype=np.int32))

    def _install(self, model, ids: list[str], lookup: dict[str, int], codes: np.ndarray) -> None:
        self._model, self._ids, self._doc_lookup, self._doc_codes = model, ids, lookup, codes
        self._query_cache = {}  # the dictionary may have grown since

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path | str, stamp: str) -> None:
        """Write the index to ``folder/<stamp>`` (atomically: a reader sees all of it or nothing) and
        drop the older stamps there. ``stamp`` names the catalogue state the index was built from."""
        folder = Path(folder)
        target = folder / _stamp_dir(stamp)
        if target.exists():
            return  # another process saved the same state first
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
        try:
            meta = {
                "format": INDEX_FORMAT,
                "stamp": stamp,
                "k1": self.k1,
                "b": self.b,
                "ids": self._ids,
                "docs": sorted(self._doc_lookup, key=self._doc_lookup.__getitem__),
            }
            np.save(tmp / "doc_codes.npy", self._doc_codes, allow_pickle=False)
            if self._model is not None:
                self._model.save(str(tmp / "bm25"), show_progress=False)
            # meta.json last: a folder without it is incomplete
            (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for old in folder.iterdir():
            if old.name != target.name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)

    def load(self, folder: Path | str, stamp: str) -> bool:
        """Load the index saved for ``stamp``; False (and nothing changed) when there is none or it is
        unreadable, so the caller rebuilds."""
        import bm25s

        source = Path(folder) / _stamp_dir(stamp)
        if not (source / "meta.json").is_file():
            return False
        try:
            meta = json.loads((source / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format") != INDEX_FORMAT or meta.get("stamp") != stamp:
                return False
            if (meta.get("k1"), meta.get("b")) != (self.k1, self.b):
                return False
            codes = np.load(source / "doc_codes.npy", allow_pickle=False)
            ids, docs = list(meta["ids"]), list(meta["docs"])
            model = None
            if ids:
                model = bm25s.BM25.load(str(source / "bm25"), show_progress=False, verbosity=0)
            if len(codes) != len(ids) or (model is not None and model.scores["num_docs"] != len(ids)):
                return False
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("BM25 index at %s unreadable, rebuilding: %s", source, exc)
            return False
        self._install(model, ids, {d: n for n, d in enumerate(docs)}, codes.astype(np.int32))
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
        """BM25 score of every chunk for ``query`` (None when no query token is indexed)."""
        if self._model is None:
            return None
        vocab = self._model.vocab_dict
        token_ids = [vocab[t] for t in dict.fromkeys(self.query_tokens(query)) if t in vocab]
        if not token_ids:
            return None
        return _scores(self._model, token_ids)

    def search(self, query: str, k: int, *, allowed_docs: set[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (chunk id, BM25 score) among chunks of ``allowed_docs`` (None = all)."""
        if k <= 0:
            return []
        scores = self.scores(query)
        if scores is None:
            return []
        if allowed_docs is not None:
            codes = [self._doc_lookup[d] for d in allowed_docs if d in self._doc_lookup]
            scores = np.where(np.isin(self._doc_codes, codes), scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[i], float(scores[i])) for i in top if scores[i] > 0]

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


def _stamp_dir(stamp: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]", "_", stamp)


def _scores(model, token_ids: list[int]) -> np.ndarray:
    """Sum the precomputed BM25 columns of ``token_ids`` with one ``bincount``.

    bm25s does one ``np.add.at`` per token (slow without numba); its index is a CSC matrix
    (token → (doc, score) pairs), so the score of every document is a weighted histogram."""
    data, indices, indptr = model.scores["data"], model.scores["indices"], model.scores["indptr"]
    num_docs = int(model.scores["num_docs"])
    spans = [(int(indptr[t]), int(indptr[t + 1])) for t in token_ids]
    spans = [(a, b) for a, b in spans if b > a]
    if not spans:
        scores = np.zeros(num_docs, dtype=np.float32)
    elif len(spans) == 1:
        scores = np.zeros(num_docs, dtype=np.float32)
        a, b = spans[0]
        scores[indices[a:b]] = data[a:b]
    else:
        idx = np.concatenate([indices[a:b] for a, b in spans])
        val = np.concatenate([data[a:b] for a, b in spans])
        scores = np.bincount(idx, weights=val, minlength=num_docs).astype(np.float32)
    if getattr(model, "nonoccurrence_array", None) is not None:  # BM25L / BM25+ variants
        scores += model.nonoccurrence_array[token_ids].sum()
    return scores
