"""`copilot eval rules`: rule drafts read from a company's documents against the rules written into them.

    run_rule_drafts(gold_rows, drafts)  # drafts: [{"id","expression","action_type",…}] (copilot rules draft)

A gold rule (``{"id","action_type","thresholds":[numbers],"mentions":[str]}``) is found when one draft has
its action type, every threshold as a number in the expression and every mention as a substring of it.
Prints ``{"n_rules","found","recall","n_drafts","precision","missed":[ids]}``. Never imports ``copilot``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _numbers(expression: str) -> set[float]:
    return {float(x) for x in re.findall(r"\d+(?:\.\d+)?", expression)}


def found_by(gold: Mapping[str, Any], draft: Mapping[str, Any]) -> bool:
    expr = str(draft.get("expression") or "")
    return (
        draft.get("action_type") == gold.get("action_type")
        and all(float(t) in _numbers(expr) for t in gold.get("thresholds") or [])
        and all(str(m) in expr for m in gold.get("mentions") or [])
    )


def run_rule_drafts(
    gold_rows: Iterable[Mapping[str, Any]], drafts: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    gold = list(gold_rows)
    missed = [g.get("id") for g in gold if not any(found_by(g, d) for d in drafts)]
    useful = sum(1 for d in drafts if any(found_by(g, d) for g in gold))
    n = len(gold)
    return {
        "n_rules": n,
        "found": n - len(missed),
        "recall": round((n - len(missed)) / n, 4) if n else 1.0,
        "n_drafts": len(drafts),
        "precision": round(useful / len(drafts), 4) if drafts else 1.0,
        "missed": missed,
    }
