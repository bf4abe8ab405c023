"""Component tier, bundled Whisper: speech after DTX pauses and long silences is transcribed, and audio
Whisper cannot make out gives an empty transcript (no echoed prompt), which is a no_speech failure."""

from __future__ import annotations

import numpy as np
import pytest

from copilot.voice.decode import SAMPLE_RATE, AudioError, decode_audio
from copilot.voice.guards import bare
from copilot.voice.transcribe import require_speech
from evals.asr import cer

from .conftest import AUDIO

pytestmark = pytest.mark.models


@pytest.mark.parametrize("name", ["speech_nb_dtx.amr", "speech_wb_dtx.amr"])
def test_the_sentence_after_a_dtx_pause_is_transcribed(transcriber, name):
    """Before: PyAV stopped at the first SID frame and only the first 3 s were transcribed."""
    result = transcriber.transcribe(AUDIO / name)

    assert result.decoding["decoded_duration_s"] > 10.0 and result.decoding["dtx_silence_s"] > 1.0
    assert result.segments[-1].end > 9.0
    # Words for 「刘经理说预算只有五十万左右。」 after the pause (Whisper base mishears espeak's voice, so
    # the test counts words, not spellings: 「流天里，我预算只有五十万左右。」, 「刘金丽，我与三持有…」).
    first, second = "我们下周三去拜访客户讨论报价方案", "刘经理说预算只有五十万左右"
    assert len(bare(result.text)) >= len(first) + len(second) // 2


def test_speech_after_a_long_silence_in_a_short_memo_is_not_dropped(transcriber, real_clips):
    """Whisper stops at a long silence inside its 30 s window; VAD cuts it out even in short memos."""
    clip = real_clips["fireredasr__BAC009S0764W0121"]
    samples = decode_audio(clip["path"]).samples
    memo = np.concatenate([samples, np.zeros(20 * SAMPLE_RATE, np.float32), samples])

    result = transcriber.transcribe(memo)

    assert cer([clip["text"] * 2], [result.text]) <= 0.2
    assert result.segments[-1].end > 20.0


def test_speech_whisper_cannot_make_out_is_no_speech_not_its_echoed_prompt(transcriber):
    """Before: 「以下是普通话的句子，请加上标点符号。」 was dropped and "" came back as a success."""
    result = transcriber.transcribe(AUDIO / "unintelligible.mp3")

    assert result.text == "" and result.segments == ()
    with pytest.raises(AudioError) as caught:
        require_speech(result)
    assert caught.value.code == "no_speech" and "没有识别出语音内容" in caught.value.message
