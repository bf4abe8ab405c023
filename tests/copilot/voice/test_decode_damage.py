"""Component tier: recordings with DTX pauses, damaged bytes and cut-off ends decode to their real length
(lost stretches become silence, counted) or fail with a Chinese reason; never to a shorter success."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from copilot.voice.decode import MAX_CONCEALED_SHARE, SAMPLE_RATE, AudioError, decode_audio

from . import amr_frames
from .conftest import AUDIO
from .test_decode import REFERENCE, _best_correlation

PAUSE_S = 3.0


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return decode_audio(REFERENCE).samples


def _at(samples: np.ndarray, start_s: float, seconds: float) -> np.ndarray:
    return samples[int(start_s * SAMPLE_RATE) : int((start_s + seconds) * SAMPLE_RATE)]


def _overwrite(data: bytes, share: float, *, at: float = 0.5, seed: int = 0) -> bytes:
    """``share`` of the bytes, from ``at`` of the way in, replaced by random bytes (a damaged middle)."""
    start, n = int(len(data) * at), int(len(data) * share)
    junk = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return data[:start] + junk + data[start + n :]


# -- AMR with DTX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["speech_nb.amr", "speech_wb.amr"])
def test_amr_with_dtx_pauses_decodes_to_its_length_with_the_speech_after_each_pause(name, reference):
    wideband, frames = amr_frames.read(AUDIO / name)
    pause = amr_frames.dtx_pause(wideband, PAUSE_S, mode=amr_frames.speech_mode(frames))
    data = amr_frames.write(wideband, frames + pause + frames + pause + frames)
    true_s = (3 * len(frames) + 2 * len(pause)) * amr_frames.FRAME_S
    saying_s = len(frames) * amr_frames.FRAME_S

    audio = decode_audio(data)

    assert abs(audio.duration_s - true_s) <= 0.02 * true_s
    assert audio.dtx_s == pytest.approx(2 * PAUSE_S)
    assert audio.concealed_s == 0
    assert audio.container_duration_s == pytest.approx(true_s)
    for k in range(3):  # each saying where it was spoken, the pauses silent
        start = k * (saying_s + PAUSE_S)
        assert _best_correlation(_at(audio.samples, start, saying_s), reference) > 0.9
        if k < 2:
            assert np.abs(_at(audio.samples, start + saying_s + 0.1, PAUSE_S - 0.2)).max() < 1e-3


@pytest.mark.parametrize("name", ["speech_nb_dtx.amr", "speech_wb_dtx.amr"])
def test_amr_from_a_real_encoder_with_dtx_decodes_to_its_length(name, reference):
    """libopencore-amrnb / libvo-amrwbenc with DTX on: the sentence, a 2 s pause, another sentence."""
    wideband, frames = amr_frames.read(AUDIO / name)
    true_s = len(frames) * amr_frames.FRAME_S  # every frame is 20 ms, NO_DATA included (RFC 4867 §5.3)
    kinds = [(f[0] >> 3) & 0x0F for f in frames]
    dtx = {9, 15} if wideband else {8, 15}
    after_pause = max(i for i, ft in enumerate(kinds) if ft in dtx and i < len(kinds) * 0.8) + 1
    second_s = after_pause * amr_frames.FRAME_S

    audio = decode_audio(AUDIO / name)

    assert abs(audio.duration_s - true_s) <= 0.02 * true_s
    assert audio.dtx_s > 1.0 and audio.concealed_s == 0
    assert _best_correlation(_at(audio.samples, 0.0, len(reference) / SAMPLE_RATE), reference) > 0.9
    second = _at(audio.samples, second_s, true_s - second_s - 0.3)  # the second sentence, where it was said
    assert 20 * np.log10(np.sqrt(np.mean(second**2))) > -35


def test_amr_frames_flagged_bad_are_concealed_not_counted_as_dtx():
    wideband, frames = amr_frames.read(AUDIO / "speech_nb.amr")
    bad = [bytes([f[0] & ~0x04]) + f[1:] if 100 <= i < 105 else f for i, f in enumerate(frames)]

    audio = decode_audio(amr_frames.write(wideband, bad))

    assert audio.concealed_s == pytest.approx(5 * amr_frames.FRAME_S)
    assert audio.dtx_s == 0
    assert audio.duration_s == pytest.approx(len(frames) * amr_frames.FRAME_S)


# -- damaged middles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["speech_nb_dtx.amr", "speech_wb_dtx.amr", "speech.mp3", "speech.m4a", "speech_wecom.silk"]
)
def test_a_small_damaged_stretch_becomes_silence_and_later_audio_keeps_its_time(name):
    """Damage inside speech (in a DTX pause, AMR's 1-byte frames make lost time a guess from bytes)."""
    clean = decode_audio(AUDIO / name)

    audio = decode_audio(_overwrite((AUDIO / name).read_bytes(), 0.03, at=0.25))

    assert audio.concealed_s > 0 and audio.concealed_share <= MAX_CONCEALED_SHARE
    assert abs(audio.duration_s - clean.duration_s) < 0.1
    tail_s = clean.duration_s * 0.3  # after the damage, the same audio at the same time
    start = clean.duration_s - tail_s
    assert _best_correlation(_at(audio.samples, start, tail_s), _at(clean.samples, start, tail_s), 2) > 0.95


@pytest.mark.parametrize(
    "name",
    ["speech_nb_dtx.amr", "speech_wb.amr", "speech.mp3", "speech.m4a", "speech.ogg", "speech_wecom.silk"],
)
def test_a_recording_damaged_over_a_tenth_of_its_length_fails_as_corrupt(name):
    with pytest.raises(AudioError) as caught:
        decode_audio(_overwrite((AUDIO / name).read_bytes(), 0.25))

    assert caught.value.code == "corrupt"
    assert "已损坏" in caught.value.message and "重新上传" in caught.value.message


# -- cut-off files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["speech.mp3", "speech.flac", "speech.webm", "speech_8k.wav"])
def test_a_file_cut_short_fails_as_truncated_rather_than_a_shorter_transcript(name):
    data = (AUDIO / name).read_bytes()

    with pytest.raises(AudioError) as caught:
        decode_audio(data[: int(len(data) * 0.6)])

    assert caught.value.code == "truncated"
    assert "不完整" in caught.value.message and "5.1 秒" in caught.value.message


def test_amr_cut_mid_frame_keeps_every_whole_frame():
    """AMR states no length: an interrupted upload is what arrived, minus the partial last frame."""
    data = (AUDIO / "speech_nb.amr").read_bytes()  # 32-byte frames: 5 bytes off cut the last one
    full = decode_audio(data)

    cut = decode_audio(data[:-5])

    assert 0 < full.duration_s - cut.duration_s <= 0.04


# -- SILK with a broken packet --------------------------------------------------------------------------


def _silk_packets(data: bytes) -> tuple[bytes, list[bytes]]:
    pos = data.index(b"#!SILK_V3") + len(b"#!SILK_V3")
    head, packets = data[:pos], []
    while pos + 2 <= len(data):
        size = int.from_bytes(data[pos : pos + 2], "little")
        if size == 0xFFFF:
            break
        packets.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return head, packets


def _silk(head: bytes, packets: list[bytes]) -> bytes:
    return head + b"".join(len(p).to_bytes(2, "little") + p for p in packets)


def _broken_packet(kind: str, size: int) -> bytes:
    if kind == "random":  # decodes to a 24 kHz frame: overran silk-python's 16 kHz buffer
        return np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes()
    return {"empty": b"", "ones": b"\xff" * size, "short": b"\x5a\x11\x03"}[kind]


@pytest.mark.parametrize("kind", ["random", "empty", "ones", "short"])
def test_silk_with_a_broken_packet_keeps_the_rest_of_the_message(kind, reference):
    head, packets = _silk_packets((AUDIO / "speech_wecom.silk").read_bytes())
    clean = decode_audio(_silk(head, packets))
    packets[100] = _broken_packet(kind, len(packets[100]))

    audio = decode_audio(_silk(head, packets))

    assert audio.duration_s == pytest.approx(clean.duration_s)
    assert 0 < audio.concealed_s <= 0.06  # the broken packet, and at most the next one
    after = 102 * 0.02
    tail = _at(clean.samples, after, clean.duration_s - after)
    assert _best_correlation(_at(audio.samples, after, clean.duration_s - after), tail, 2) > 0.95


def test_a_broken_silk_packet_does_not_corrupt_the_process_memory(tmp_path):
    """The packet that made silk-python write past its buffer (glibc aborts at the next free): decoded
    in a child process, which must exit cleanly."""
    head, packets = _silk_packets((AUDIO / "speech_wecom.silk").read_bytes())
    packets[100] = _broken_packet("random", len(packets[100]))
    path = tmp_path / "broken.silk"
    path.write_bytes(_silk(head, packets))
    script = (
        "import gc, sys\n"
        "from copilot.voice.decode import decode_audio\n"
        "for _ in range(5):\n"
        "    decode_audio(sys.argv[1]); gc.collect()\n"
        "print('ok')\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "ok"
