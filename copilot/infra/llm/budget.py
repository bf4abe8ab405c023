"""Prompt budgets: how many tokens a text costs, and evidence trimmed to fit (pure functions).

The estimate errs high so a prompt never overflows a small context window: a CJK character counts as
one token (Qwen and DeepSeek tokenizers need ~0.6–0.8), any other text ~3.5 characters per token.
Trimming keeps a *prefix* of each text, cut at a sentence end when one is near: a trimmed evidence text
is still a verbatim part of its source, so anything quoted from it still verifies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_SENTENCE_END = re.compile(r"[。！？；!?;\n]")
MIN_ITEM_TOKENS = 40  # an item trimmed below this is dropped instead: a stub cannot support a claim


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 3.5)


def trim_text(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` within ``max_tokens``, ended at a sentence end when one is in the
    last third; the whole text when it fits."""
    if estimate_tokens(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits
        mid = (lo + hi + 1) // 2
        if estimate_tokens(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    prefix = text[:lo]
    ends = [m.end() for m in _SENTENCE_END.finditer(prefix)]
    if ends and ends[-1] >= len(prefix) * 2 // 3:
        prefix = prefix[: ends[-1]]
    return prefix.rstrip()


def fit(texts: Sequence[str], budget: int, *, min_tokens: int = MIN_ITEM_TOKENS) -> list[str | None]:
    """Texts in priority order → what each may keep (None = dropped) so that the sum fits ``budget``.

    Max-min fair: short texts stay whole, long ones are cut to one common cap; when that cap falls
    below ``min_tokens`` the lowest-priority text is dropped and the cap recomputed. The first text is
    never dropped (it is trimmed to the budget instead)."""
    sizes = [estimate_tokens(t) for t in texts]
    keep = len(texts)
    while keep > 0:
        cap = _water_level(sizes[:keep], budget)
        if cap >= min_tokens or keep == 1:
            break
        keep -= 1
    if keep == 0:
        return []
    cap = _water_level(sizes[:keep], budget)
    out: list[str | None] = []
    for i, text in enumerate(texts):
        if i >= keep:
            out.append(None)
        elif sizes[i] <= cap:
            out.append(text)
        else:
            out.append(trim_text(text, max(1, cap)))
    return out


def _water_level(sizes: Sequence[int], budget: int) -> int:
    """The largest cap c with sum(min(size, c)) <= budget (the largest size when all fit)."""
    if sum(sizes) <= budget:
        return max(sizes, default=0)
    remaining, count = budget, len(sizes)
    for size in sorted(sizes):
        share = remaining // count
        if size > share:
            return max(0, share)
        remaining -= size
        count -= 1
    return max(sizes, default=0)  # pragma: no cover - only when everything fits
