"""`copilot transcribe` and `copilot memo` on recordings that must not pass for a transcript: exit 1,
the Chinese reason on stderr, the stable code in --json; and the decoding report on a good one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.main import app
from copilot.voice.transcribe import Segment, Transcript, WhisperTranscriber
from tests.copilot.conftest import DATA

AUDIO = DATA / "audio"


@pytest.fixture
def whisper(models_dir):
    from copilot.voice.whisper_model import ensure_whisper_model

    return WhisperTranscriber(ensure_whisper_model(models_dir))


class HeardNothing:
    """A transcriber whose every segment was a hallucination the guards removed (or only punctuation)."""

    def transcribe(self, audio, *, hotwords=(), language=None) -> Transcript:
        return Transcript("。", "zh", len(audio) / 16000, (Segment(0.0, 2.0, "。"),), 0.1)


def _run(services, *args: str):
    common._services["s"] = services
    return CliRunner().invoke(app, list(args))


def test_transcribe_of_a_cut_off_file_exits_1_with_the_reason(services, tmp_path):
    services.provide("transcriber", WhisperTranscriber(tmp_path / "no-model"))  # decoding fails first
    data = (AUDIO / "speech.mp3").read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2])

    result = _run(services, "transcribe", str(cut), "--json")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "truncated"
    assert "录音文件不完整" in result.stderr


@pytest.mark.models
def test_transcribe_of_speech_whisper_cannot_make_out_exits_1_with_no_speech(services, whisper):
    """The issue's memo: Whisper echoed its prompt, the echo was dropped, and "" came back with exit 0."""
    services.provide("transcriber", whisper)

    result = _run(services, "transcribe", str(AUDIO / "unintelligible.mp3"), "--json")

    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"error": {"code": "no_speech", "message": result.stderr[3:].strip()}}
    assert "没有识别出语音内容" in result.stderr


@pytest.mark.models
def test_transcribe_json_reports_container_and_decoded_duration(services, whisper):
    services.provide("transcriber", whisper)

    result = _run(services, "transcribe", str(AUDIO / "speech_nb_dtx.amr"), "--json")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"text", "language", "duration_s", "segments", "rtf", "decoding"}
    decoding = doc["decoding"]
    assert decoding["container_duration_s"] == decoding["decoded_duration_s"] == doc["duration_s"]
    assert decoding["dtx_silence_s"] > 1.0 and decoding["concealed_share"] == 0.0


def test_memo_with_nothing_heard_fails_and_drafts_no_visit_log(crm_services):
    crm_services.provide("transcriber", HeardNothing())
    crm_services.provide("kb", None)

    human = _run(crm_services, "memo", str(AUDIO / "speech_8k.wav"), "--customer", "c_a1")
    as_json = _run(crm_services, "memo", str(AUDIO / "speech_8k.wav"), "--customer", "c_a1", "--json")

    assert human.exit_code == 1 and "没有识别出语音内容" in human.stderr
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "failed" and doc["error"]["code"] == "no_speech"
    assert doc["visit_record"] is None and doc["draft"] is None
