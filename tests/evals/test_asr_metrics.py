"""Unit tier: ASR metric arithmetic and normalisation on tiny hand-computed cases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from evals.asr import cer, edit_distance, run_asr, wer
from evals.text_norm import char_tokens, chinese_numerals, integer_zh, normalize_text, word_tokens


@pytest.mark.parametrize(
    ("ref", "hyp", "distance"),
    [
        ("kitten", "sitting", 3),  # 2 substitutions + 1 insertion
        ("", "abc", 3),
        ("abc", "", 3),
        ("今天天气好", "今天天汽好", 1),
        ("abc", "abc", 0),
    ],
)
def test_edit_distance(ref, hyp, distance):
    assert edit_distance(list(ref), list(hyp)) == distance


def test_cer_is_corpus_level_total_edits_over_total_reference_characters():
    # 1 substitution in 4 chars + 1 deletion of 1 char = 2 edits / 5 chars (the mean of rates would be 0.625).
    assert cer(["今天天气", "好"], ["今天天汽", ""]) == pytest.approx(0.4)


def test_cer_ignores_punctuation_spaces_width_and_script():
    assert cer(["经理说：你好。"], ["經理 說，你好！"]) == 0.0


def test_wer_counts_words_after_case_and_punctuation_are_removed():
    assert wer(["THE CAT SAT"], ["The cat sat down."]) == pytest.approx(1 / 3)
    assert wer(["IT WAS NOT SO"], ["It was, not so!"]) == 0.0


def test_rates_are_none_without_reference_tokens():
    assert cer([], []) is None
    assert wer(["。"], ["hello"]) is None


def test_normalisation_steps():
    assert normalize_text("ＡＢＣ，１２３") == "abc 123"  # full-width → half-width, punctuation removed
    assert normalize_text("經理說：「你好！」") == "经理说 你好"  # Traditional → Simplified
    assert word_tokens("Don't  stop-now") == ["dont", "stop", "now"]
    assert char_tokens("你 好。") == ["你", "好"]


@pytest.mark.parametrize(
    ("n", "spoken"),
    [(0, "零"), (7, "七"), (10, "十"), (12, "十二"), (20, "二十"), (105, "一百零五"), (110, "一百一十"),
     (1005, "一千零五"), (2000, "二千"), (10500, "一万零五百"), (100000, "十万"), (110000, "十一万"),
     (20000001, "二千万零一"), (100000000, "一亿"), (300050000, "三亿零五万")],
)  # fmt: skip
def test_integers_are_read_by_place_value(n, spoken):
    assert integer_zh(n) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("打85折", "打八十五折"),
        ("便宜20%", "便宜百分之二十"),
        ("3.5%的返点", "百分之三点五的返点"),
        ("2026年3月", "二零二六年三月"),  # a year digit by digit, the month by value
        ("1,200台", "一千二百台"),
        ("电话13800138000", "电话一三八零零一三八零零零"),
        ("编号007", "编号零零七"),
        ("下周三之前", "下周三之前"),  # no digits: unchanged
    ],
)
def test_chinese_numerals_reads_arabic_numbers_as_spoken(text, spoken):
    assert chinese_numerals(text) == spoken


def test_cer_compares_numbers_as_spoken_on_both_sides_and_wer_leaves_them():
    assert cer(["客户要求打八五折，便宜百分之二十"], ["客户要求打85折，便宜20%。"]) == pytest.approx(1 / 15)
    assert cer(["一共三十五台"], ["一共35台"]) == 0.0
    assert cer(["一共35台"], ["一共三十五台"]) == 0.0  # symmetric
    assert cer(["一共三十五台"], ["一共36台"]) == pytest.approx(1 / 6)
    assert normalize_text("ＡＢＣ，１２３") == "abc 123"  # only CER tokens read numbers out
    assert wer(["ROOM 12"], ["room 12"]) == 0.0


@dataclass(frozen=True)
class _Result:
    text: str
    duration_s: float


class _ScriptedTranscriber:
    """Replays fixed transcripts; records which files the harness asked for."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts
        self.asked: list[Path] = []

    def transcribe(self, audio: Path) -> _Result:
        self.asked.append(audio)
        return _Result(self.texts[audio.name], 2.0)


def test_run_asr_resolves_audio_against_the_manifest_and_splits_cer_and_wer(tmp_path):
    rows = [
        {"audio": "wav/a.wav", "text": "今天天气", "language": "zh"},
        {"audio": "wav/b.wav", "text": "好", "language": "zh"},
        {"audio": "wav/c.wav", "text": "the cat sat", "language": "en"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    fake = _ScriptedTranscriber({"a.wav": "今天天汽", "b.wav": "", "c.wav": "The cat sat down"})

    result = run_asr(manifest, transcriber=fake)

    assert set(result) == {"n", "cer", "wer", "rtf"}
    assert result["n"] == 3
    assert result["cer"] == pytest.approx(0.4)
    assert result["wer"] == pytest.approx(0.3333, abs=1e-4)
    assert 0 <= result["rtf"] < 1
    assert fake.asked == [tmp_path / "wav" / n for n in ("a.wav", "b.wav", "c.wav")]
