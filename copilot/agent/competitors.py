"""Competitors the knowledge base has battlecards for (``竞品攻防卡：智云科技`` → 智云科技)."""

from __future__ import annotations

import re
from typing import Any

_BATTLECARD_PREFIX = re.compile(r"^(竞品攻防卡|竞品对比|竞品分析|攻防卡|battlecard)\s*[：:]\s*", re.I)


def competitor_names(kb: Any) -> list[str]:
    """Competitors the KB has battlecards for (``竞品攻防卡：智云科技`` → 智云科技)."""
    names = []
    for doc in kb.documents() if kb is not None else []:
        if doc.doc_type == "battlecard":
            m = _BATTLECARD_PREFIX.match(doc.title or "")
            name = doc.title[m.end() :].strip() if m else ""
            if 2 <= len(name) <= 16:
                names.append(name)
    return names
