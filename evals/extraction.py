"""Visit-record extraction evaluation over the memos format of DESIGN §5.3.

The extractor is a parameter — ``extract(row) -> prediction`` where ``row`` is one memo line (``script``
or ``audio`` resolved to an absolute path, ``recorded_at``) and the prediction has the gold shape
(``needs`` [str], ``objections`` [{type, text}], ``competitors`` [str], ``next_steps`` [{action, due,
owner}], ``sentiment``, ``stage_hint``) — so this module never imports ``copilot``.

Matching, after normalisation (NFKC, Traditional → Simplified, case and punctuation/spaces removed):

* two texts match when one contains the other and the shorter is at least 40% of the longer, or their
  character-bigram Dice coefficient is ≥ 0.5 (gold spans are phrases; predictions may be whole clauses);
* needs, objections (text only) and competitors match one-to-one, best pairs first;
* a next step matches only when its action text matches **and** its due date is the same (both may be
  null); the owner is not scored;
* F1 is micro-averaged over all memos (2·TP / (predicted + gold); 1.0 when both are empty);
* ``objection_type_accuracy`` is the share of matched objection pairs whose types agree;
  ``sentiment_accuracy`` and ``stage_accuracy`` are exact-label shares over memos.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.text_norm import normalize_text

Prediction = Mapping[str, Any]
Extractor = Callable[[Mapping[str, Any]], Prediction]


def norm(text: str) -> str:
    return normalize_text(text or "").replace(" ", "")


def _bigrams(text: str) -> list[str]:
    return [text[i : i + 2] for i in range(len(text) - 1)] if len(text) > 1 else [text]


def similarity(a: str, b: str) -> float:
    """Dice over character bigrams (multiset), or the length ratio when one text contains the other."""
    a, b = norm(a), norm(b)
    if not a or not b:
        return 0.0
    short, long_ = sorted((a, b), key=len)
    contained = len(short) / len(long_) if short in long_ else 0.0
    ga, gb = _bigrams(a), _bigrams(b)
    pool = list(gb)
    overlap = 0
    for g in ga:
        if g in pool:
            pool.remove(g)
            overlap += 1
    dice = 2 * overlap / (len(ga) + len(gb))
    return max(dice, min(1.0, 0.5 + (contained - 0.4) / 0.6 * 0.5) if contained >= 0.4 else 0.0)


def texts_match(a: str, b: str) -> bool:
    return similarity(a, b) >= 0.5


def match_pairs(
    gold: Sequence[Any], pred: Sequence[Any], score: Callable[[Any, Any], float], *, threshold: float = 0.5
) -> list[tuple[int, int]]:
    """One-to-one matching, greedy by score: (gold index, predicted index) pairs scoring ≥ threshold."""
    scored = sorted(
        ((score(g, p), i, j) for i, g in enumerate(gold) for j, p in enumerate(pred)), key=lambda x: -x[0]
    )
    used_g: set[int] = set()
    used_p: set[int] = set()
    pairs = []
    for s, i, j in scored:
        if s < threshold:
            break
        if i not in used_g and j not in used_p:
            used_g.add(i)
            used_p.add(j)
            pairs.append((i, j))
    return pairs


def f1(tp: int, n_pred: int, n_gold: int) -> float:
    return 1.0 if n_pred + n_gold == 0 else 2 * tp / (n_pred + n_gold)


def _step_score(g: Mapping[str, Any], p: Mapping[str, Any]) -> float:
    if (g.get("due") or None) != (p.get("due") or None):
        return 0.0
    return similarity(g.get("action", ""), p.get("action", ""))


def score_memos(gold_rows: Sequence[Mapping[str, Any]], predictions: Sequence[Prediction]) -> dict[str, Any]:
    """The DESIGN §5.2 figures for predictions aligned with ``gold_rows``."""
    counts = {k: [0, 0, 0] for k in ("needs", "objections", "competitors", "next_steps")}  # tp, pred, gold
    type_hits = type_total = sentiment_hits = stage_hits = 0
    for gold, pred in zip(gold_rows, predictions, strict=True):
        for key in ("needs", "competitors"):
            g, p = list(gold.get(key) or []), list(pred.get(key) or [])
            counts[key][0] += len(match_pairs(g, p, similarity))
            counts[key][1] += len(p)
            counts[key][2] += len(g)
        g_obj, p_obj = list(gold.get("objections") or []), list(pred.get("objections") or [])
        pairs = match_pairs(g_obj, p_obj, lambda a, b: similarity(a.get("text", ""), b.get("text", "")))
        counts["objections"][0] += len(pairs)
        counts["objections"][1] += len(p_obj)
        counts["objections"][2] += len(g_obj)
        type_total += len(pairs)
        type_hits += sum(g_obj[i].get("type") == p_obj[j].get("type") for i, j in pairs)
        g_steps, p_steps = list(gold.get("next_steps") or []), list(pred.get("next_steps") or [])
        counts["next_steps"][0] += len(match_pairs(g_steps, p_steps, _step_score))
        counts["next_steps"][1] += len(p_steps)
        counts["next_steps"][2] += len(g_steps)
        sentiment_hits += (pred.get("sentiment") or None) == (gold.get("sentiment") or None)
        stage_hits += (pred.get("stage_hint") or None) == (gold.get("stage_hint") or None)
    n = len(gold_rows)
    return {
        "n": n,
        "f1": {k: round(f1(*v), 4) for k, v in counts.items()},
        "objection_type_accuracy": round(type_hits / type_total, 4) if type_total else 0.0,
        "sentiment_accuracy": round(sentiment_hits / n, 4) if n else 0.0,
        "stage_accuracy": round(stage_hits / n, 4) if n else 0.0,
    }


def read_memos(path: Path) -> list[dict[str, Any]]:
    """Memo lines; an ``audio`` path is made absolute (it is relative to the memos file)."""
    path = Path(path)
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("audio"):
                row["audio"] = str((path.parent / row["audio"]).resolve())
            rows.append(row)
    return rows


def run_extraction(memos: Path | Iterable[Mapping[str, Any]], *, extract: Extractor) -> dict[str, Any]:
    """Run ``extract`` on every memo and score it: ``{"n","f1":{…},"objection_type_accuracy",…}``."""
    rows = read_memos(memos) if isinstance(memos, str | Path) else list(memos)
    predictions = [extract(row) for row in rows]
    return score_memos(rows, predictions)
