"""Component tier: every accepted phone format, decoded from a real file of that format."""

from __future__ import annotations

import io

import numpy as np
import pytest

from copilot.voice.decode import SAMPLE_RATE, AudioError, decode_audio, detect_format

from .conftest import AUDIO

REFERENCE = AUDIO / "speech_8k.wav"
FORMATS = {
    "speech_8k.wav": "wav",
    "speech.flac": "flac",
    "speech.mp3": "mp3",
    "speech.m4a": "mp4",
    "speech.aac": "aac",
    "speech.ogg": "ogg",
    "speech.webm": "webm",
    "speech_nb.amr": "amr",
    "speech_wb.amr": "amr",
    "speech_wecom.silk": "silk",
    "speech_plain.silk": "silk",
}


def _envelope(samples: np.ndarray, hop: int = 320) -> np.ndarray:
    """20 ms RMS envelope, zero-mean and unit-norm, so codecs of different loudness compare."""
    n = len(samples) // hop
    env = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop) ** 2, axis=1))
    env = env - env.mean()
    return env / (np.linalg.norm(env) + 1e-12)


def _best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 10) -> float:
    """Highest envelope correlation within ±200 ms (codecs add a little delay)."""
    ea, eb = _envelope(a), _envelope(b)
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x, y = (ea[lag:], eb) if lag >= 0 else (ea, eb[-lag:])
        n = min(len(x), len(y))
        best = max(best, float(np.dot(x[:n], y[:n])))
    return best


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return decode_audio(REFERENCE).samples


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_phone_format_decodes_to_the_same_16k_mono_speech(name, reference):
    audio = decode_audio(AUDIO / name)

    assert audio.format == FORMATS[name]
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration_s - len(reference) / SAMPLE_RATE) < 0.15
    assert np.abs(audio.samples).max() <= 1.0
    # Same words, same rhythm: the loudness envelope follows the uncompressed reference.
    assert _best_correlation(audio.samples, reference) > 0.9


def test_format_is_detected_from_bytes_not_from_the_file_name(tmp_path):
    disguised = tmp_path / "voice.amr"  # WeCom names SILK voice messages .amr
    disguised.write_bytes((AUDIO / "speech_wecom.silk").read_bytes())

    assert decode_audio(disguised).format == "silk"
    assert detect_format((AUDIO / "speech.mp3").read_bytes()) == "mp3"
    assert detect_format((AUDIO / "speech_wb.amr").read_bytes()[:64]) == "amr"


def test_silk_with_and_without_the_wecom_leading_byte_decode_identically():
    wecom = (AUDIO / "speech_wecom.silk").read_bytes()
    plain = (AUDIO / "speech_plain.silk").read_bytes()
    assert wecom[0] == 0x02 and plain.startswith(b"#!SILK_V3")

    np.testing.assert_array_equal(decode_audio(wecom).samples, decode_audio(plain).samples)


def test_silk_cut_off_mid_frame_keeps_the_whole_frames():
    data = (AUDIO / "speech_wecom.silk").read_bytes()
    full = decode_audio(data)

    cut = decode_audio(data[:-7])

    assert 0 < full.duration_s - cut.duration_s <= 0.04


def test_real_speech_survives_a_round_trip_through_amr_nb_and_silk(real_clips):
    """Real AISHELL speech (not synthetic) through the two messaging codecs, encoded at test time."""
    import av
    import pysilk

    clip = decode_audio(real_clips["fireredasr__BAC009S0764W0121"]["path"]).samples
    pcm = (clip * 32767).astype("<i2")

    silk = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm.tobytes()), silk, SAMPLE_RATE, 24_000, tencent=True)
    amr = io.BytesIO()
    with av.open(amr, mode="w", format="amr") as out:
        stream = out.add_stream("amr_nb", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)

    for data in (silk.getvalue(), amr.getvalue()):
        decoded = decode_audio(data).samples
        assert abs(len(decoded) - len(clip)) < 0.05 * SAMPLE_RATE
        assert _best_correlation(decoded, clip) > 0.9


def _code(source, **limits) -> str:
    with pytest.raises(AudioError) as caught:
        decode_audio(source, **limits)
    assert caught.value.message and caught.value.message == str(caught.value)
    return caught.value.code


def test_empty_input_is_rejected_with_a_chinese_message():
    with pytest.raises(AudioError, match="为空") as caught:
        decode_audio(b"")
    assert caught.value.code == "empty"


def test_digital_silence_is_rejected():
    assert _code(AUDIO / "silence.wav") == "silent"


def test_unknown_bytes_are_an_unsupported_format():
    assert _code(b"%PDF-1.7 this is not audio" * 20) == "unsupported_format"


@pytest.mark.parametrize(
    ("name", "cut"),
    [("speech.m4a", 300), ("speech.ogg", 100), ("speech_nb.amr", 6), ("speech_8k.wav", 44)],
)
def test_truncated_files_are_corrupt(name, cut):
    assert _code((AUDIO / name).read_bytes()[:cut]) == "corrupt"


def test_garbage_after_a_valid_header_is_corrupt():
    junk = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()

    assert _code(b"\x02#!SILK_V3" + junk) == "corrupt"
    assert _code(b"ID3" + junk) == "corrupt"


@pytest.mark.parametrize("name", ["speech.m4a", "speech_wecom.silk", "speech_8k.wav"])
def test_recordings_longer_than_the_limit_are_rejected(name):
    assert _code(AUDIO / name, max_seconds=2.0) == "too_long"


def test_files_over_the_size_limit_are_rejected_before_decoding(tmp_path):
    path = AUDIO / "speech.mp3"

    assert _code(path, max_bytes=10_000) == "too_large"
    assert _code(path.read_bytes(), max_bytes=10_000) == "too_large"
