"""Objection typing by nearest prototype with the bundled embedding model (offline extractor).

The lexicons type most objections; this is for the clauses they cannot type (a strong concern with no
topic word, typed 其他 before) and for ties (several topic lexicons match one clause). Every type has a
few short Chinese examples, embedded once per embedder (``embed_passages``); a clause is embedded with
``embed_queries`` and scored per type by its best cosine (vectors are normalised: a dot product).

A type is accepted only when it clears ``THRESHOLD`` and beats the runner-up by ``MARGIN``; otherwise
the caller keeps 其他. Both were set on a handful of clauses the lexicons do not type (tests); the e5
model's cosines are compressed (0.85–0.97), hence the high threshold and the small margin.

    typer = PrototypeTyper(embedder)          # plain value: any knowledge_base Embedder
    typer.classify("担心坏了以后找谁修")        # → "服务" (or None: keep 其他)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

THRESHOLD = 0.90
MARGIN = 0.008

PROTOTYPES: Mapping[str, tuple[str, ...]] = {
    "价格": ("客户嫌我们的报价太贵", "要求打折降价", "价格比别家高", "希望再给点优惠", "这个价格接受不了",
             "单价太高，觉得划不来"),
    "交付": ("交货期太长，等不了", "安装施工进度赶不上", "上线时间来不及", "担心工期延误", "实施周期太长",
             "安装要停线，影响生产"),
    "技术": ("担心系统和现有设备不兼容", "担心数据安全，要求私有化部署", "系统不稳定，经常掉线",
             "功能不满足要求，界面太复杂", "测量精度不够，误报多", "和现有系统对接困难"),
    "竞品": ("竞争对手报价更低", "对手送硬件，条件更好", "他们已经在用别家的产品", "拿我们和友商的方案比较",
             "别的厂家也在找他们"),
    "预算": ("今年没有预算", "预算已经用完了", "资金紧张，钱不够", "要等明年的预算", "投入太大，利润压力大"),
    "决策流程": ("要领导拍板才能定", "需要走审批和招标流程", "集团总部统一决策", "采购流程很长",
                 "对接人说了不算", "要上会讨论、签字"),
    "服务": ("担心售后服务跟不上", "出了问题响应太慢", "本地没有人维护", "报修以后很久才有人来",
             "维保和培训不到位"),
    "其他": ("对合同付款方式有意见", "要求先试点再签约", "担心工人不会用，买了没人用", "对账期和付款条件有要求",
             "对我们公司规模和资质有顾虑"),
}  # fmt: skip


class PrototypeTyper:
    """Nearest-prototype objection typing. Prototypes are embedded on first use, once per instance."""

    def __init__(self, embedder: Any, prototypes: Mapping[str, Sequence[str]] = PROTOTYPES) -> None:
        self.embedder = embedder
        self._labels = [kind for kind, texts in prototypes.items() for _ in texts]
        self._texts = [t for texts in prototypes.values() for t in texts]
        self._kinds = list(prototypes)
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    def _prototypes(self) -> np.ndarray:
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    self._vectors = np.asarray(self.embedder.embed_passages(self._texts), dtype=np.float32)
        return self._vectors

    def scores(self, text: str) -> dict[str, float]:
        """Per type, the best cosine between ``text`` and that type's examples."""
        query = np.asarray(self.embedder.embed_queries([text]), dtype=np.float32)[0]
        sims = self._prototypes() @ query
        best: dict[str, float] = dict.fromkeys(self._kinds, -1.0)
        for label, sim in zip(self._labels, sims.tolist(), strict=True):
            best[label] = max(best[label], sim)
        return best

    def classify(self, text: str) -> str | None:
        """The type when the model is confident (never 其他: that is the caller's default), else None."""
        ranked = sorted(self.scores(text).items(), key=lambda kv: kv[1], reverse=True)
        (kind, top), (_, second) = ranked[0], ranked[1]
        if kind == "其他" or top < THRESHOLD or top - second < MARGIN:
            return None
        return kind

    def pick(self, text: str, candidates: Iterable[str]) -> str:
        """Tie-breaker: of several lexicon types, the one nearest to ``text`` (first one on a tie)."""
        candidates = list(candidates)
        scores = self.scores(text)
        return max(candidates, key=lambda kind: scores.get(kind, -1.0))


_typers: dict[int, tuple[Any, PrototypeTyper]] = {}
_typers_lock = threading.Lock()


def typer_for(embedder: Any) -> PrototypeTyper | None:
    """The one typer of this embedder (prototypes embedded once per process), None without one."""
    if embedder is None:
        return None
    with _typers_lock:
        held = _typers.get(id(embedder))
        if held is None or held[0] is not embedder:
            held = (embedder, PrototypeTyper(embedder))
            _typers[id(embedder)] = held
        return held[1]
