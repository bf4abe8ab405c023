"""`copilot memo FILE --customer ID --json` and `copilot eval extraction --memos … --json`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.main import app
from copilot.voice.transcribe import Segment, Transcript
from tests.copilot.conftest import DATA

REPO = Path(__file__).resolve().parents[3]


class OneLiner:
    def transcribe(self, audio, *, hotwords=(), language=None) -> Transcript:
        seg = Segment(0.0, 3.9, "华星这边希望下周三之前看到报价，我明天把方案发过去。")
        return Transcript(seg.text, "zh", len(audio) / 16000, (seg,), 0.1)


def test_memo_command_prints_transcript_visit_record_draft_and_suggestions(crm_services):
    crm_services.provide("transcriber", OneLiner())
    crm_services.provide("kb", None)  # suggestions from the CRM and memos only: no embedder to load
    common._services["s"] = crm_services
    result = CliRunner().invoke(
        app, ["memo", str(DATA / "audio" / "speech_8k.wav"), "--customer", "c_a1", "--json"]
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) >= {"memo_id", "transcript", "visit_record", "draft", "suggestions"}
    assert set(doc["transcript"]) == {"text", "language", "duration_s", "segments", "rtf", "decoding"}
    assert doc["visit_record"]["next_steps"][0]["due"] is not None
    assert doc["draft"]["op"] == "log_visit" and doc["draft"]["fields"]["user_id"] == "rep_a"


def test_memo_command_fails_in_chinese_for_an_unknown_customer(crm_services):
    common._services["s"] = crm_services
    result = CliRunner().invoke(app, ["memo", str(DATA / "audio" / "speech_8k.wav"), "--customer", "nope"])
    assert result.exit_code == 1 and "不存在" in result.stderr


def test_eval_extraction_prints_exactly_the_contract_keys():
    result = CliRunner().invoke(
        app, ["eval", "extraction", "--memos", str(REPO / "evals/datasets/memos.jsonl"), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["n", "f1", "objection_type_accuracy", "sentiment_accuracy", "stage_accuracy"]
    assert list(doc["f1"]) == ["needs", "objections", "competitors", "next_steps"]
    assert doc["n"] >= 30
