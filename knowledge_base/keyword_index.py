"""BM25 over jieba ``cut_for_search`` tokens, with CJK character bigrams as a fallback for words the
dictionary splits badly (colloquial or mistyped questions: "客户嫌贵咋回"), and a user dictionary hook
for CRM product, competitor and customer names."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

import numpy as np

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
    """An in-memory BM25 index (bm25s) over pre-cut token strings; rebuilt as a whole when dirty."""

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
        self._ids, self._doc_lookup = ids, lookup
        self._query_cache = {}  # the dictionary may have grown since
        self._doc_codes = np.asarray(codes, dtype=np.int32)
        if not corpus:
            self._model = None
            return
        model = bm25s.BM25(k1=self.k1, b=self.b)
        model.index(corpus, show_progress=False)
        self._model = model

    def query_tokens(self, query: str) -> list[str]:
        tokens = self._query_cache.get(query)
        if tokens is None:
            if len(self._query_cache) >= 256:
                self._query_cache.clear()
            tokens = self._query_cache[query] = self.tokenizer.tokens(query)
        return tokens

    def search(self, query: str, k: int, *, allowed_docs: set[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (chunk id, BM25 score) among chunks of ``allowed_docs`` (None = all)."""
        if self._model is None or k <= 0:
            return []
        vocab = self._model.vocab_dict
        tokens = [t for t in dict.fromkeys(self.query_tokens(query)) if t in vocab]
        if not tokens:
            return []
        scores = self._model.get_scores(tokens)
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
