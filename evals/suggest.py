"""`copilot eval suggest`: next-best-action cases (DESIGN §5.2/§5.3) against a system under test.

The system is a parameter (this module never imports ``copilot``):

    run_suggest(cases, suggest=lambda customer_id, as_of: [suggestion JSON, ...],
                verify=lambda citation_json, case: bool)

An expected action counts when one suggestion has its ``action_type`` and cites every ``must_cite``
entry (``kb:<doc path>``, ``crm:<customer_id>.<field>``, ``memo:<memo_id>``; ``a|b`` = either);
``action_type_recall`` counts an expected action when one suggestion has its ``action_type``, whatever it cites.
A forbidden entry is hit when a suggestion of its ``action_type`` matches ``detail``: a ``kb:``/``crm:``
/``memo:`` detail matches a citation of that source; any other detail is text that must not appear
in the title, rationale or proposed change. Citation validity = shown citations that ``verify`` /
all shown citations.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Suggest = Callable[[str, str], list[Mapping[str, Any]]]
Verify = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
SOURCE_PREFIXES = ("kb:", "crm:", "memo:")


def cites(suggestion: Mapping[str, Any], target: str) -> bool:
    """Does the suggestion cite ``target`` (``kb:path`` / ``crm:cid.field`` / ``memo:id``; ``a|b`` = either)?"""
    for option in target.split("|"):
        kind, _, ref = option.strip().partition(":")
        for c in suggestion.get("citations") or []:
            if c.get("kind") != kind:
                continue
            if kind == "kb" and c.get("source") == ref:
                return True
            if kind in ("crm", "memo") and (c.get("ref") == ref or c.get("source") == ref):
                return True
    return False


def meets(suggestion: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return suggestion.get("action_type") == expected.get("action_type") and all(
        cites(suggestion, m) for m in expected.get("must_cite") or []
    )


def _text(suggestion: Mapping[str, Any]) -> str:
    change = suggestion.get("proposed_change")
    return "\n".join(
        [str(suggestion.get("title") or ""), str(suggestion.get("rationale") or ""),
         json.dumps(change, ensure_ascii=False) if change else ""]
    )  # fmt: skip


def forbidden_hit(suggestion: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    action = rule.get("action_type")
    if action not in (None, "", "*") and suggestion.get("action_type") != action:
        return False
    detail = str(rule.get("detail") or "")
    if not detail:
        return True
    if detail.startswith(SOURCE_PREFIXES):
        return cites(suggestion, detail)
    return detail in _text(suggestion)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_suggest(
    cases: Iterable[Mapping[str, Any]], *, suggest: Suggest, verify: Verify | None = None
) -> dict[str, Any]:
    n_cases = expected = met = typed = forbidden = citations = valid = 0
    latencies: list[float] = []
    misses: list[dict[str, Any]] = []  # what was expected and not shown with its evidence, to read
    for case in cases:
        n_cases += 1
        start = time.perf_counter()
        shown = list(suggest(str(case["customer_id"]), str(case.get("as_of") or "")))
        latencies.append((time.perf_counter() - start) * 1000)
        for exp in case.get("expected_actions") or []:
            expected += 1
            hit = any(meets(s, exp) for s in shown)
            met += hit
            typed += any(s.get("action_type") == exp.get("action_type") for s in shown)
            if not hit:
                misses.append(
                    {"case": case.get("id"), "expected": dict(exp), "shown": [_brief(s) for s in shown]}
                )
        for rule in case.get("forbidden") or []:
            hits = [s for s in shown if forbidden_hit(s, rule)]
            forbidden += len(hits)
            misses += [{"case": case.get("id"), "forbidden": dict(rule), "shown": [_brief(s)]} for s in hits]
        for s in shown:
            for c in s.get("citations") or []:
                citations += 1
                valid += bool(verify(c, case)) if verify is not None else 1
    return {
        "n_cases": n_cases,
        "expected_recall": round(met / expected, 4) if expected else 1.0,
        "action_type_recall": round(typed / expected, 4) if expected else 1.0,
        "forbidden_hits": forbidden,
        "citation_validity": round(valid / citations, 4) if citations else 1.0,
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "misses": misses,
    }


def _brief(suggestion: Mapping[str, Any]) -> dict[str, Any]:
    cited = [f"{c.get('kind')}:{c.get('source') or c.get('ref')}" for c in suggestion.get("citations") or []]
    return {"action_type": suggestion.get("action_type"), "title": suggestion.get("title"), "cites": cited}
