"""ASR benchmark: the bundled Whisper base at int8 on this machine, beam 1 vs beam 5.

Prints one JSON document: per setting CER (zh, all and ``official*`` references), WER (en) and RTF on
``../shared/evaldata/asr/manifest.jsonl``, RTF on a ~1 min "memo" stitched in memory from the real
Mandarin clips (short clips pay a fixed 30 s-window cost; memos are 30 s – 3 min), load time and peak RSS.

    .venv/bin/python -m benches asr                      (defaults; what `make bench` runs)
    .venv/bin/python benches/bench_asr.py [--manifest PATH] [--models-dir DIR]

The baseline is beam 1 measured in the same run: ``beam5_vs_beam1`` gives the RTF ratio and the CER
change the wider beam buys. RTF on the short manifest clips is pessimistic (each pays a fixed 30 s
window); ``memo_60s_rtf`` is the figure that matters for memos (target ≤ 0.25).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from copilot.voice.decode import SAMPLE_RATE, decode_audio  # noqa: E402
from copilot.voice.transcribe import WhisperTranscriber  # noqa: E402
from copilot.voice.whisper_model import ensure_whisper_model  # noqa: E402
from evals.asr import read_manifest, summarise, transcribe_manifest  # noqa: E402

DEFAULT_MANIFEST = REPO / ".." / "shared" / "evaldata" / "asr" / "manifest.jsonl"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def _stitched_memo(manifest: Path, seconds: float = 60.0) -> np.ndarray:
    """Real zh clips joined with 0.6 s pauses, repeated up to ``seconds`` (kept in memory only)."""
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    clips = [
        decode_audio(manifest.parent / row["audio"]).samples
        for row in read_manifest(manifest)
        if row.get("language") == "zh"
    ]
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * SAMPLE_RATE:
        for clip in clips:
            parts += [clip, gap]
            total += len(clip) + len(gap)
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]


def run(manifest: Path, models_dir: Path) -> dict[str, object]:
    model_dir = ensure_whisper_model(models_dir)
    memo = _stitched_memo(manifest)
    report: dict[str, object] = {"model": str(model_dir), "compute_type": "int8", "cpu_threads": 2}
    for beam in (1, 5):
        transcriber = WhisperTranscriber(model_dir, beam_size=beam)
        transcriber.load()
        items = transcribe_manifest(manifest, transcriber=transcriber)
        official = [i for i in items if i.quality.startswith("official")]
        started = time.perf_counter()
        transcriber.transcribe(memo)
        memo_rtf = (time.perf_counter() - started) / (len(memo) / SAMPLE_RATE)
        report[f"beam{beam}"] = {
            "manifest": summarise(items),
            "official": summarise(official),
            "memo_60s_rtf": round(memo_rtf, 4),
            "load_s": round(transcriber.load_seconds or 0.0, 2),
        }
        del transcriber
    b1, b5 = report["beam1"], report["beam5"]
    report["beam5_vs_beam1"] = {
        "memo_rtf_ratio": round(b5["memo_60s_rtf"] / b1["memo_60s_rtf"], 2) if b1["memo_60s_rtf"] else None,
        "official_cer_change": _delta(b5["official"]["cer"], b1["official"]["cer"]),
        "all_zh_cer_change": _delta(b5["manifest"]["cer"], b1["manifest"]["cer"]),
    }
    report["peak_rss_mb"] = _rss_mb()
    return report


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def main(argv: list[str] | None = None) -> None:
    """``argv`` None (as ``python -m benches asr`` calls it) means the defaults."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("COPILOT_MODELS_DIR", REPO / ".cache" / "models")),
    )
    args = parser.parse_args(argv or [])
    if not args.manifest.is_file():
        print(json.dumps({"skipped": f"no manifest at {args.manifest}"}))
        return
    print(json.dumps(run(args.manifest.resolve(), args.models_dir), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
