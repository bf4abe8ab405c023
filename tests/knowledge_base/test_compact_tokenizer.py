"""The compact Unigram tokenizer must give exactly the full tokenizer's ids, and hand texts in other
scripts to the full one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.compact_tokenizer import CompactTokenizer

REPO = Path(__file__).resolve().parents[2]
SAMPLES = [
    "query: 客户嫌贵咋回",
    "passage: 《销售话术手册》第3章：异议处理\n客户说价格太贵时，先确认对比的对象，再讲总拥有成本。",
    "ＡＢＣ全角字符１２３～ 😀👍 [微笑] ①②③ → ≥ 5% ¥100 €20 naïve café",
    "The customer is worried about the total cost of ownership.",
    "カタカナ と ひらがな、数据中心 data center 迁移方案",
    "   前后有空格\t和制表符\n\n",
    "",
]
OTHER_SCRIPTS = ["Привет, как дела?", "안녕하세요 고객님", "مرحبا", "สวัสดีครับ"]


def _texts() -> list[str]:
    texts = list(SAMPLES)
    for path in sorted((REPO / "copilot" / "demo" / "kb").rglob("*.md"))[:40]:
        texts += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:30]
    # What reps type and say (the project's own eval sets: present in every checkout) …
    for line in (REPO / "evals" / "datasets" / "dialogues.jsonl").read_text(encoding="utf-8").splitlines():
        texts += [turn["say"] for turn in json.loads(line)["turns"]]
    for line in (REPO / "evals" / "datasets" / "memos.jsonl").read_text(encoding="utf-8").splitlines():
        texts.append(json.loads(line)["script"])
    # … and, where the external retrieval set sits beside the checkout, real customer-service queries.
    queries = REPO.parent / "shared" / "evaldata" / "retrieval" / "afqmc_dev_faq_queries.jsonl"
    if queries.is_file():
        texts += [
            json.loads(line)["query"] for line in queries.read_text(encoding="utf-8").splitlines()[:500]
        ]
    return texts


@pytest.fixture(scope="module")
def tokenizers_pair(models_dir):
    from tokenizers import Tokenizer

    from knowledge_base.e5_model import ensure_e5_model

    path = ensure_e5_model(models_dir) / "tokenizer.json"
    full = Tokenizer.from_file(str(path))
    full.enable_truncation(512)
    return CompactTokenizer(path, max_length=512), full


@pytest.mark.models
def test_compact_ids_equal_the_full_tokenizers_on_chinese_english_and_symbols(tokenizers_pair):
    compact, full = tokenizers_pair
    texts = _texts()
    assert len(texts) > 300
    assert compact.compact_size < 0.6 * compact.vocab_size
    ours = compact.encode(texts)
    theirs = [e.ids for e in full.encode_batch(texts)]
    assert [list(map(int, ids)) for ids in ours] == theirs
    assert [list(map(int, ids)) for ids in compact.encode([texts[1]])] == [theirs[1]]  # the single-text path
    assert not compact.full_loaded  # none of these needed the full vocabulary


@pytest.mark.models
def test_other_scripts_go_to_the_full_tokenizer(tokenizers_pair):
    compact, full = tokenizers_pair
    mixed = ["客户嫌贵", *OTHER_SCRIPTS, "a long text " * 400]
    ours = compact.encode(mixed)
    assert compact.full_loaded
    assert [list(map(int, ids)) for ids in ours] == [e.ids for e in full.encode_batch(mixed)]
    assert len(ours[-1]) == 512 and isinstance(ours[0], np.ndarray)  # truncated like the full one


@pytest.mark.models
def test_the_compact_vocabulary_is_built_once_then_loaded_from_its_cache(models_dir, tmp_path):
    from knowledge_base.e5_model import ensure_e5_model

    path = ensure_e5_model(models_dir) / "tokenizer.json"
    texts = _texts()[:200]
    built = CompactTokenizer(path, max_length=512, cache_dir=tmp_path)
    assert not built.from_cache and (tmp_path / "compact-tokenizer-meta.json").is_file()
    cached = CompactTokenizer(path, max_length=512, cache_dir=tmp_path)
    assert cached.from_cache and cached.vocab_size == built.vocab_size
    assert [list(map(int, ids)) for ids in cached.encode(texts)] == [
        list(map(int, ids)) for ids in built.encode(texts)
    ]
    # A cache made from another tokenizer file (its sha256 differs) is not used: rebuilt and replaced.
    meta = json.loads((tmp_path / "compact-tokenizer-meta.json").read_text(encoding="utf-8"))
    (tmp_path / "compact-tokenizer-meta.json").write_text(
        json.dumps({**meta, "source_sha256": "0" * 64}), encoding="utf-8"
    )
    rebuilt = CompactTokenizer(path, max_length=512, cache_dir=tmp_path)
    assert not rebuilt.from_cache
    assert CompactTokenizer(path, max_length=512, cache_dir=tmp_path).from_cache
    # A truncated ids file is not trusted either.
    (tmp_path / "compact-tokenizer-ids.npy").write_bytes(b"\x93NUMPY")
    assert not CompactTokenizer(path, max_length=512, cache_dir=tmp_path).from_cache
