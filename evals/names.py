"""Name accuracy of transcripts: the share of the deployment's names (customers, contacts, competitors,
products) said in a recording that the transcript spells right, before and after name correction.

    score_names(rows)  # rows: {"reference", "before", "after", "vocabulary"}; pure, no copilot import

A name counts for a memo when it occurs in the reference text; it is right when it occurs in the
transcript (whitespace and punctuation ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_SKIP = re.compile(r"[\s，。！？、；：,.!?;:\"'“”‘’（）()]+")


def _norm(text: str) -> str:
    return _SKIP.sub("", text or "")


def score_names(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    said = before = after = n = 0
    for row in rows:
        n += 1
        ref, b, a = _norm(row["reference"]), _norm(row["before"]), _norm(row["after"])
        names = {w for w in row["vocabulary"] if len(w) >= 2 and w in ref}
        # a name inside a longer one said (华星 in 华星电子) is one mention, counted once
        names = {w for w in names if not any(w != o and w in o for o in names)}
        said += len(names)
        before += sum(1 for w in names if w in b)
        after += sum(1 for w in names if w in a)
    return {
        "n": n,
        "names_said": said,
        "name_accuracy_before": round(before / said, 4) if said else 1.0,
        "name_accuracy_after": round(after / said, 4) if said else 1.0,
    }
