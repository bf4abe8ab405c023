"""Memos that must not pass for a transcript (cut off, mostly damaged, nothing heard): failed with a
Chinese reason and a stable code in GET /api/memos/{id}, the upload kept, no visit record, no draft.
And a memo whose DTX pauses were silence by design shows how it was decoded."""

from __future__ import annotations

import numpy as np
import pytest

from copilot.voice.transcribe import Segment, Transcript
from tests.copilot.api.test_memos import AUDIO, ScriptedTranscriber, finished, upload
from tests.copilot.conftest import token_for


@pytest.fixture(autouse=True)
def no_kb(crm_services):
    crm_services.provide("kb", None)


class HeardNothing:
    """Whisper's segments all removed by the guards but one of punctuation."""

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, audio, *, hotwords=(), language=None) -> Transcript:
        self.calls += 1
        return Transcript("。", "zh", len(audio) / 16000, (Segment(0.0, 1.0, "。"),), 0.1)


def _damaged(data: bytes, share: float) -> bytes:
    start, n = len(data) // 2, int(len(data) * share)
    return (
        data[:start]
        + np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
        + data[start + n :]
    )


def _assert_failed_and_kept(services, memo: dict, data: bytes, code: str, words: str) -> None:
    assert memo["status"] == "failed"
    assert memo["error"]["code"] == code and words in memo["error"]["message"]
    assert memo["visit_record"] is None and memo["draft"] is None and memo["transcript"]["text"] == ""
    [kept] = [p for p in (services.settings.home / "uploads").iterdir() if p.name.startswith(memo["memo_id"])]
    assert kept.read_bytes() == data


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        ((AUDIO / "speech.mp3").read_bytes()[:9000], "truncated", "录音文件不完整"),
        (_damaged((AUDIO / "speech_nb_dtx.amr").read_bytes(), 0.3), "corrupt", "的内容已损坏"),
    ],
)
def test_a_cut_off_or_mostly_damaged_upload_fails_and_is_kept(crm_services, client_for, data, code, words):
    transcriber = ScriptedTranscriber("不应被调用")
    crm_services.provide("transcriber", transcriber)
    client = client_for(crm_services)

    memo_id = upload(client, crm_services, "rep_a", data=data).json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    _assert_failed_and_kept(crm_services, memo, data, code, words)
    assert transcriber.calls == []


def test_a_memo_with_nothing_heard_fails_as_no_speech_and_cannot_be_confirmed(crm_services, client_for):
    transcriber = HeardNothing()
    crm_services.provide("transcriber", transcriber)
    client = client_for(crm_services)
    data = (AUDIO / "speech_8k.wav").read_bytes()

    memo_id = upload(client, crm_services, "rep_a", data=data).json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    assert transcriber.calls == 1
    _assert_failed_and_kept(crm_services, memo, data, "no_speech", "没有识别出语音内容")
    confirm = client.post(f"/api/memos/{memo_id}/confirm", headers=token_for(crm_services, "rep_a"))
    assert confirm.status_code == 409


def test_a_done_memo_shows_how_its_audio_was_decoded(crm_services, client_for):
    crm_services.provide("transcriber", ScriptedTranscriber("华星这边希望下周三之前看到报价。"))
    client = client_for(crm_services)

    memo_id = upload(client, crm_services, "rep_a", AUDIO / "speech_nb_dtx.amr").json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    assert memo["status"] == "done"
    decoding = memo["visit_record"]["transcription"]["decoding"]
    assert decoding["container_duration_s"] == decoding["decoded_duration_s"] > 10.0
    assert decoding["dtx_silence_s"] > 1.0 and decoding["concealed_share"] == 0.0


@pytest.mark.models
def test_speech_whisper_cannot_make_out_fails_as_no_speech(crm_services, client_for, models_dir):
    from copilot.voice.transcribe import WhisperTranscriber
    from copilot.voice.whisper_model import ensure_whisper_model

    crm_services.provide("transcriber", WhisperTranscriber(ensure_whisper_model(models_dir)))
    client = client_for(crm_services)
    data = (AUDIO / "unintelligible.mp3").read_bytes()

    memo_id = upload(client, crm_services, "rep_a", data=data).json()["memo_id"]
    memo = finished(client, crm_services, "rep_a", memo_id)

    _assert_failed_and_kept(crm_services, memo, data, "no_speech", "没有识别出语音内容")
