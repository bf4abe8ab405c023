"""Unit tier: the hallucination guards on the texts Whisper base actually wrote (see guards.py)."""

from __future__ import annotations

import numpy as np
import pytest

from copilot.voice.guards import (
    Heard,
    collapse_loops,
    is_prompt_echo,
    keep_heard,
    longest_silence_s,
    strip_prompt_echo,
)
from copilot.voice.pcm import SAMPLE_RATE
from copilot.voice.transcribe import chinese_text

PROMPT = "以下是普通话的句子，请加上标点符号。"


def _tone(seconds: float, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


@pytest.mark.parametrize(
    "text",
    [
        "以下是普通话的句子，请加上标点符号。",
        "请加上标点符号。",
        "加上标点符号，请加上标点符号。",
        "普通话的句子。",
    ],
)
def test_the_prompt_whole_or_in_pieces_is_an_echo(text):
    assert is_prompt_echo(text, PROMPT)


@pytest.mark.parametrize("text", ["以下是报价单。", "普通话说得不错。", "今天见了客户，以下是普通话的句子。"])
def test_real_words_are_not_an_echo(text):
    assert not is_prompt_echo(text, PROMPT)


def test_the_hotwords_looping_on_their_own_are_an_echo_but_names_in_sentences_are_not():
    names = ["华星电子", "华星", "张总", "刘工", "智云科技"]

    assert is_prompt_echo(collapse_loops("张总，刘工，刘工，刘工，刘工，刘工，"), PROMPT, names)
    assert not is_prompt_echo("今天见了华星电子的张总。", PROMPT, names)
    assert not is_prompt_echo("张总说可以。", PROMPT, names)


def test_pieces_of_the_prompt_are_cut_out_of_real_words():
    assert strip_prompt_echo("今天见了客户，以下是普通话的句子。", PROMPT) == "今天见了客户，"
    assert (
        strip_prompt_echo("我们下周喊取派反客，请加上标点符号。我们下周喊取派反客，请加上标点符号。", PROMPT)
        == "我们下周喊取派反客，我们下周喊取派反客，"
    )
    assert strip_prompt_echo("说普通话的客户。", PROMPT) == "说普通话的客户。"  # a short run is just words


def test_a_looping_phrase_is_kept_once():
    looped = "我们下周三去拜访客户，早轮报价方案，早轮报价方案，早轮报价方案，早轮报价方案，"

    assert collapse_loops(looped) == "我们下周三去拜访客户，早轮报价方案，"
    assert collapse_loops("啊啊啊啊啊啊啊啊") == "啊"
    assert collapse_loops("对对对，就是这个价格。") == "对对对，就是这个价格。"  # people do repeat a little


def test_keep_heard_drops_echoes_silence_no_speech_and_repeated_segments():
    audio = np.concatenate([_tone(4.0), _silence(6.0), _tone(4.0)])
    heard = [
        Heard(0.0, 4.0, "以下是普通話的句子，請加上標點符號。"),  # the prompt, in Whisper's script
        Heard(0.0, 4.0, "今天見了客戶,對方說報價太貴了。", no_speech_prob=0.1, avg_logprob=-0.3),
        Heard(4.5, 9.5, "謝謝觀看。"),  # over digital silence
        Heard(10.0, 14.0, "今天見了客戶,對方說報價太貴了。"),  # the same segment again: a loop
        Heard(10.0, 14.0, "嗯。", no_speech_prob=0.93, avg_logprob=-0.86),  # Whisper sure it is empty
        Heard(10.0, 14.0, "下週三之前發報價,下週三之前發報價,下週三之前發報價,下週三之前發報價,"),
        Heard(
            0.0, 14.0, "《盡王》" + "《殿王》" * 60 + "《殿", no_speech_prob=0.89, avg_logprob=-0.1
        ),  # a loop
        Heard(14.0, 18.0, "討論報價方案," * 8, no_speech_prob=0.05, avg_logprob=-0.4),  # said once, looped
    ]

    kept = keep_heard(heard, audio, prompt=PROMPT, clean=chinese_text)

    assert [k.text for k in kept] == [
        "今天见了客户，对方说报价太贵了。",
        "下周三之前发报价，",
        "讨论报价方案，",
    ]


def test_confident_segments_of_real_speech_are_kept():
    """The weakest real-speech segments measured (evaldata/asr and synthetic memos): all kept."""
    audio = _tone(10.0)
    heard = [
        Heard(0.0, 3.1, "作为一个男人正骑马人，这个单当活动。", no_speech_prob=0.41, avg_logprob=-0.68),
        Heard(3.1, 6.0, "今天上午去拍摄华线电子的刘晓雯天理。", no_speech_prob=0.47, avg_logprob=-0.82),
        Heard(6.0, 10.0, "刘晓雯天理，我目前才轮的我身的系统。", no_speech_prob=0.63, avg_logprob=-0.47),
    ]

    assert len(keep_heard(heard, audio, prompt=PROMPT)) == 3


def test_the_longest_silence_is_measured_in_the_audio():
    audio = np.concatenate([_tone(1.0), _silence(2.5), _tone(1.0), _silence(0.5)])

    assert longest_silence_s(audio) == pytest.approx(2.5, abs=0.06)
    assert longest_silence_s(_tone(3.0)) == 0.0
