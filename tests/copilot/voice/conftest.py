"""Voice fixtures: the committed synthetic recordings, the real clips of ../shared, and the bundled
Whisper model provisioned once per test session into COPILOT_TEST_MODELS_DIR (default .cache/models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

AUDIO = Path(__file__).resolve().parents[2] / "data" / "audio"
ASR_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "evaldata" / "asr"


@pytest.fixture(scope="session")
def real_clips() -> dict[str, dict]:
    """Manifest rows of the real human-speech clips, keyed by file stem (skip when ../shared is absent)."""
    manifest = ASR_DIR / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip("../shared/evaldata/asr is not beside the repository")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {Path(r["audio"]).stem: {**r, "path": ASR_DIR / r["audio"]} for r in rows}


@pytest.fixture(scope="session")
def whisper_dir(models_dir) -> Path:
    from copilot.voice.whisper_model import ensure_whisper_model

    return ensure_whisper_model(models_dir)


@pytest.fixture(scope="session")
def transcriber(whisper_dir):
    """One real WhisperTranscriber per test worker (model loads on first use)."""
    from copilot.voice.transcribe import WhisperTranscriber

    return WhisperTranscriber(whisper_dir)
