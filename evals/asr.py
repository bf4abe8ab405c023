"""ASR evaluation: corpus-level CER (zh) and WER (en) plus real-time factor.

The transcriber is a parameter (anything with ``transcribe(path) -> obj`` whose result has ``.text`` and
``.duration_s``), so this module never imports ``copilot``. Manifest lines follow DESIGN §5.3:
``{"audio": path relative to the manifest, "text": reference, "language": "zh"|"en"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evals.text_norm import char_tokens, word_tokens


class _Transcript(Protocol):
    text: str
    duration_s: float


class _Transcriber(Protocol):
    def transcribe(self, audio: Path) -> _Transcript: ...


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions + deletions + insertions), O(len(ref)·len(hyp))."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def _corpus_rate(pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> float | None:
    """Total edits / total reference tokens; None when there is nothing to score."""
    total = sum(len(ref) for ref, _ in pairs)
    if total == 0:
        return None
    return sum(edit_distance(ref, hyp) for ref, hyp in pairs) / total


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float | None:
    """Corpus character error rate after normalisation."""
    return _corpus_rate([(char_tokens(r), char_tokens(h)) for r, h in zip(refs, hyps, strict=True)])


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float | None:
    """Corpus word error rate after normalisation."""
    return _corpus_rate([(word_tokens(r), word_tokens(h)) for r, h in zip(refs, hyps, strict=True)])


@dataclass(frozen=True, slots=True)
class AsrItem:
    audio: str
    language: str
    reference: str
    hypothesis: str
    duration_s: float
    seconds: float
    quality: str = ""


def read_manifest(manifest_path: Path) -> list[dict[str, Any]]:
    lines = Path(manifest_path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def transcribe_manifest(manifest_path: Path, *, transcriber: _Transcriber) -> list[AsrItem]:
    """Transcribe every clip; wall time per clip includes decoding (what a user waits for)."""
    base = Path(manifest_path).parent
    items = []
    for row in read_manifest(manifest_path):
        started = time.perf_counter()
        result = transcriber.transcribe(base / row["audio"])
        items.append(
            AsrItem(
                audio=row["audio"],
                language=row.get("language", "zh"),
                reference=row["text"],
                hypothesis=result.text,
                duration_s=float(result.duration_s),
                seconds=time.perf_counter() - started,
                quality=str(row.get("reference_quality", "")),
            )
        )
    return items


def summarise(items: Sequence[AsrItem]) -> dict[str, Any]:
    """``{"n","cer","wer","rtf"}``: CER over zh items, WER over en items, RTF = Σ wall time / Σ audio."""
    zh = [i for i in items if i.language.startswith("zh")]
    en = [i for i in items if i.language.startswith("en")]
    audio = sum(i.duration_s for i in items)
    rate = cer([i.reference for i in zh], [i.hypothesis for i in zh])
    wrate = wer([i.reference for i in en], [i.hypothesis for i in en])
    return {
        "n": len(items),
        "cer": None if rate is None else round(rate, 4),
        "wer": None if wrate is None else round(wrate, 4),
        "rtf": round(sum(i.seconds for i in items) / audio, 4) if audio else None,
    }


def run_asr(manifest_path: Path, *, transcriber: _Transcriber) -> dict[str, Any]:
    """DESIGN §5.2 ``copilot eval asr``."""
    return summarise(transcribe_manifest(manifest_path, transcriber=transcriber))
