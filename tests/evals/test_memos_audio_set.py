"""The audio memo set (evals/datasets/memos_audio.jsonl): DESIGN §5.3 rows whose phone-format audio
decodes, with the gold fields of the typed memo they were spoken from."""

from __future__ import annotations

import json
from pathlib import Path

from copilot.voice.decode import decode_audio, detect_format
from evals.extraction import read_memos

DATASETS = Path(__file__).resolve().parents[2] / "evals" / "datasets"
AUDIO_SET = DATASETS / "memos_audio.jsonl"
OBJECTION_TYPES = {"价格", "交付", "技术", "竞品", "预算", "决策流程", "服务", "其他"}
STAGES = {"线索", "需求确认", "方案报价", "商务谈判", "赢单", "输单"}


def test_rows_follow_the_memos_format_and_copy_the_gold_of_their_typed_memo():
    typed = {r["id"]: r for r in read_memos(DATASETS / "memos.jsonl")}
    rows = read_memos(AUDIO_SET)

    assert len(rows) >= 6 and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert Path(row["audio"]).is_file() and "script" not in row
        assert {o["type"] for o in row["objections"]} <= OBJECTION_TYPES
        assert row["stage_hint"] in STAGES | {None}
        gold = typed[row["source"]]
        for key in ("recorded_at", "customer", "needs", "objections", "competitors", "next_steps",
                    "sentiment", "stage_hint"):  # fmt: skip
            assert row[key] == gold[key], (row["id"], key)


def test_audio_paths_are_relative_to_the_jsonl_and_the_set_stays_small():
    lines = [json.loads(x) for x in AUDIO_SET.read_text(encoding="utf-8").splitlines() if x.strip()]
    paths = [AUDIO_SET.parent / x["audio"] for x in lines]

    assert all(not Path(x["audio"]).is_absolute() for x in lines)
    assert sum(p.stat().st_size for p in paths) < 400_000


def test_every_phone_format_is_there_and_decodes_to_speech_length_audio():
    formats = {}
    for row in read_memos(AUDIO_SET):
        data = Path(row["audio"]).read_bytes()
        audio = decode_audio(data)
        formats[detect_format(data)] = formats.get(detect_format(data), 0) + 1
        assert 20 < len(audio.samples) / 16_000 < 180  # a 20 s – 3 min memo

    assert {"amr", "silk", "mp4", "mp3"} <= set(formats)
