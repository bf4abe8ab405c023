"""Transcription: pure helpers (unit) and the bundled Whisper on real human speech (component, slow)."""

from __future__ import annotations

import io
import json

import pytest

from copilot.voice.decode import AudioError
from copilot.voice.transcribe import (
    Segment,
    Transcriber,
    Transcript,
    WhisperTranscriber,
    _hotword_prompt,
    chinese_text,
    choose_language,
    is_prompt_echo,
    to_simplified,
    to_traditional,
)
from evals.asr import cer

from .conftest import AUDIO


def test_transcript_json_has_exactly_the_cli_contract_keys():
    t = Transcript(
        text="你好", language="zh", duration_s=1.23456, segments=(Segment(0.0, 1.2, "你好"),), rtf=0.123456
    )

    data = json.loads(json.dumps(t.to_json(), ensure_ascii=False))

    assert data == {
        "text": "你好",
        "language": "zh",
        "duration_s": 1.235,
        "segments": [{"start": 0.0, "end": 1.2, "text": "你好"}],
        "rtf": 0.1235,
        "decoding": None,  # transcribed from samples: no file decoded
    }


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ([("zh", 0.9), ("en", 0.05)], "zh"),
        ([("ja", 0.45), ("zh", 0.30)], "zh"),  # unsure: Mandarin wins
        ([("ko", 0.7), ("zh", 0.2)], "zh"),  # zh close behind
        ([("en", 0.97), ("zh", 0.01)], "en"),  # confidently English
        ([("th", 0.93), ("en", 0.02), ("zh", 0.01)], "zh"),  # robotic Mandarin "is" Thai: not served
        ([("th", 0.2), ("en", 0.75), ("zh", 0.01)], "en"),
        ([], "zh"),
    ],
)
def test_language_call_prefers_mandarin_unless_another_language_is_certain(probs, expected):
    assert choose_language(probs) == expected


def test_traditional_output_becomes_simplified():
    assert to_simplified("這個經理說完了銷售問題") == "这个经理说完了销售问题"


def test_taiwan_standard_output_and_spoken_words_become_simplified():
    assert to_simplified("他很著急，看著報價單問甚麼時候下週三") == "他很着急，看着报价单问什么时候下周三"


@pytest.mark.parametrize(
    "name", ["刘晓峰", "钟文斌", "鲜丰汇", "海拓物联", "智云科技", "华星电子", "里程", "叶国华", "东莞粤华"]
)
def test_crm_names_go_to_whisper_in_traditional_and_come_back_unchanged(name):
    hotword = to_traditional(name)

    assert hotword != name or name == to_simplified(name)
    assert to_simplified(hotword) == name
    assert "峯" not in to_traditional("刘晓峰")  # Taiwan standard, as Whisper writes it (s2t gives the HK 峯)


def test_chinese_output_gets_full_width_punctuation_but_numbers_keep_theirs():
    assert chinese_text("首先,說一下報價? 總價3,000元!") == "首先，说一下报价？总价3,000元！"


@pytest.mark.parametrize(
    ("text", "echo"),
    [("以下是普通话的句子，请加。", True), ("以下是普通話的句子，請加下普通話。", True), ("以下是报价", False),
     ("以下", False), ("今天见了客户，以下是普通话的句子", False)],
)  # fmt: skip
def test_an_echoed_initial_prompt_is_recognised(text, echo):
    assert is_prompt_echo(text) is echo


def test_hotwords_are_deduplicated_and_bounded():
    prompt = _hotword_prompt(["华东电力", " 王总 ", "华东电力", "", *["很长的名字" * 10] * 10])

    assert prompt.startswith("华东电力，王总")
    assert len(prompt) <= 200


def test_bad_audio_fails_fast_without_loading_the_model(tmp_path):
    transcriber = WhisperTranscriber(tmp_path / "no-model")

    with pytest.raises(AudioError) as caught:
        transcriber.transcribe(AUDIO / "silence.wav")

    assert caught.value.code == "silent"
    assert transcriber.load_seconds is None


@pytest.mark.models
def test_real_mandarin_clip_is_transcribed_in_simplified_chinese_with_timestamps(transcriber, real_clips):
    clip = real_clips["fireredasr__BAC009S0764W0121"]

    result = transcriber.transcribe(clip["path"])

    assert isinstance(transcriber, Transcriber)
    assert result.language == "zh"
    assert cer([clip["text"]], [result.text]) <= 0.15
    assert abs(result.duration_s - clip["duration_s"]) < 0.05
    assert result.segments and result.text == "".join(s.text for s in result.segments)
    for seg in result.segments:
        assert 0.0 <= seg.start < seg.end <= result.duration_s + 0.5
    assert 0 < result.rtf < 5
    assert transcriber.describe()["load_seconds"] is not None


@pytest.mark.models
def test_wecom_silk_voice_message_of_real_speech_is_transcribed(transcriber, real_clips):
    """A real clip as WeCom would deliver it: SILK v3 with the 0x02 byte, named .amr."""
    import pysilk

    from copilot.voice.decode import decode_audio

    clip = real_clips["s3tokenizer__BAC009S0764W0122"]
    pcm = (decode_audio(clip["path"]).samples * 32767).astype("<i2")
    silk = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm.tobytes()), silk, 16_000, 24_000, tencent=True)

    result = transcriber.transcribe(silk.getvalue(), hotwords=["城市"])

    assert result.language == "zh"
    assert cer([clip["text"]], [result.text]) <= 0.25


@pytest.mark.models
def test_an_idle_model_is_released_and_the_next_memo_loads_it_again(whisper_dir, real_clips):
    import time

    clip = real_clips["fireredasr__BAC009S0764W0121"]
    transcriber = WhisperTranscriber(whisper_dir, idle_seconds=1.5)

    first = transcriber.transcribe(clip["path"])
    assert transcriber.loaded and transcriber.loads == 1
    deadline = time.monotonic() + 10
    while transcriber.loaded and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not transcriber.loaded  # released by the idle timer

    again = transcriber.transcribe(clip["path"])
    assert transcriber.loads == 2 and again.text == first.text
    assert transcriber.describe()["idle_seconds"] == 1.5


@pytest.mark.models
def test_a_model_in_use_is_not_released(whisper_dir):
    transcriber = WhisperTranscriber(whisper_dir)  # idle_seconds=0: kept loaded, released only on request
    transcriber._use()
    try:
        assert transcriber.release() is False and transcriber.loaded
    finally:
        transcriber._done()
    assert transcriber.release() is True and not transcriber.loaded
