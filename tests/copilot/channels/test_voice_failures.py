"""A voice message that yields no words (or no whole recording) gets a reply that says so, in Chinese;
the memo fails, no visit summary or suggestion is sent, and the audio is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from copilot.features.channels.render import MEMO_FAILED, VOICE_RECEIVED
from copilot.storage import tables as t
from copilot.voice.transcribe import Segment, Transcript
from tests.copilot.channels.conftest import wait_jobs, wecom_post, wecom_voice_xml
from tests.copilot.conftest import DATA

AUDIO = DATA / "audio"


class HeardNothing:
    """Whisper's segments all removed by the hallucination guards but one of punctuation."""

    def transcribe(self, audio, *, hotwords=(), language=None) -> Transcript:
        return Transcript("。", "zh", len(audio) / 16000, (Segment(0.0, 1.0, "。"),), 0.1)


@pytest.fixture
def voice_services(bound_services):
    bound_services.provide("kb", None)
    return bound_services


def _memo(services):
    with services.engine.connect() as conn:
        return conn.execute(
            select(t.memos).where(t.memos.c.user_id == "rep_a", t.memos.c.id != "memo_1")
        ).one()


@pytest.mark.parametrize(
    ("audio", "code", "words"),
    [
        ((AUDIO / "speech_nb.amr").read_bytes(), "no_speech", "没有识别出语音内容"),
        ((AUDIO / "speech.mp3").read_bytes()[:9000], "truncated", "录音文件不完整"),
    ],
)
def test_a_voice_message_without_words_is_answered_with_the_reason(
    voice_services, wecom_fake, client_for, audio, code, words
):
    client = client_for(voice_services)
    voice_services.provide("transcriber", HeardNothing())
    wecom_fake.media["MEDIA_V9"] = audio

    assert wecom_post(client, wecom_voice_xml("MEDIA_V9")).status_code == 200
    wait_jobs(voice_services)

    memo = _memo(voice_services)
    assert memo.status == "failed" and memo.error["code"] == code and memo.visit_record is None
    texts = wecom_fake.texts()
    assert texts[0] == VOICE_RECEIVED
    assert texts[-1] == MEMO_FAILED.format(message=memo.error["message"]) and words in texts[-1]
    assert not any(x.startswith("拜访纪要") for x in texts)
    assert [m for m in wecom_fake.sent if m["msgtype"] == "template_card"] == []
    assert Path(memo.audio_path).read_bytes() == audio
