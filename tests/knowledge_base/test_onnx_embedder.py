"""The bundled model on onnxruntime: it must embed and rank like the torch path, and keep torch out of
the process. The export is made once per models folder (the session ``embedder`` fixture)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from knowledge_base.embedder import ModelUnavailable, SentenceTransformerEmbedder, load_embedder
from knowledge_base.onnx_embedder import (
    EXPORT_MANIFEST,
    OnnxEmbedder,
    export_status,
    onnx_dir_for,
    read_export_manifest,
)

CHINESE = [
    "客户嫌贵咋回",
    "预算没了咋办",
    "竞品报价比我们低百分之二十，客户要求我们降价",
    "请问你们的系统支持私有化部署吗？",
    "下周三上午去拜访张总，带上方案和报价单",
    "我们今年的IT预算已经冻结了～",
    "ＡＢＣ全角字符１２３",
    "数据中心 data center 迁移方案",
]

CORPUS = [
    "价格异议处理\n客户说价格太贵时，先确认对比的对象，再讲总拥有成本。",
    "私有化部署\n系统支持在客户机房私有化部署，提供离线安装包。",
    "交付周期\n合同签订后一般四周内完成交付上线。",
    "售后服务\n工作日四小时内响应，重大故障两小时到场。",
    "年框合同可以给到八五折",
    "医疗行业的客户最关心数据安全，需提供等保三级证明。",
    "制造业客户希望能和MES系统打通，我们提供标准接口。",
    "试用期30天，到期后自动转正式订阅",
    "竞品对比\n与友商相比，我们的报表功能更灵活，实施周期更短。",
    "拜访准备\n拜访前确认决策人、预算和时间表，带上方案和报价单。",
]
QUESTIONS = ["客户说太贵了怎么办", "能不能装在我们自己的服务器上", "多久能上线", "和友商比有什么优势"]


@pytest.mark.models
def test_the_default_runtime_is_onnx_and_embeds_like_torch_on_chinese_sentences(embedder, torch_embedder):
    assert isinstance(embedder, OnnxEmbedder) and embedder.describe()["backend"] == "onnx"
    assert isinstance(torch_embedder, SentenceTransformerEmbedder)
    paragraphs = [f"产品资料\n{s}" for s in CHINESE]
    for ours, theirs in (
        (embedder.embed_queries(CHINESE), torch_embedder.embed_queries(CHINESE)),
        (embedder.embed_passages(paragraphs), torch_embedder.embed_passages(paragraphs)),
        (embedder.embed_passages(CHINESE), torch_embedder.embed_passages(CHINESE)),
    ):
        assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(CHINESE), 384)
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() >= 0.999, cosines


@pytest.mark.models
def test_onnx_ranks_a_small_corpus_like_torch(embedder, torch_embedder):
    def ranking(model) -> list[list[int]]:
        scores = model.embed_queries(QUESTIONS) @ model.embed_passages(CORPUS).T
        return [list(np.argsort(-row)[:3]) for row in scores]

    ours = ranking(embedder)
    assert ours == ranking(torch_embedder)
    assert [top[0] for top in ours] == [0, 1, 2, 8]  # and the answers are the right ones


@pytest.mark.models
def test_a_batch_sorted_by_length_comes_back_in_input_order(embedder):
    """Ingest batches are sorted by length and run in sub-batches on all cores; every row must equal
    the text embedded on its own."""
    texts = [("很长的一段产品说明。" * (n % 7 + 1)) + f"\n第{n}条" for n in range(23)]
    embedder.batch_size = 4  # several sub-batches, run concurrently
    try:
        batched = embedder.embed_passages(texts)
    finally:
        embedder.batch_size = 32
    single = np.vstack([embedder.embed_passages([t]) for t in texts])
    assert np.allclose(batched, single, atol=1e-5)


@pytest.mark.models
def test_the_export_sits_beside_the_model_folder_and_matched_torch(embedder, models_dir):
    onnx_file, reason = export_status(embedder.path)
    assert reason == "" and onnx_file == onnx_dir_for(embedder.path) / "model.onnx"
    assert onnx_file.parent.parent == models_dir
    manifest = read_export_manifest(onnx_file.parent)
    assert manifest["min_cosine"] >= 0.999
    assert (onnx_file.parent / "model.onnx.data").stat().st_size > 400_000_000  # fp32 weights, not int8


def test_a_stale_or_missing_export_is_reported_with_the_reason(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "copilot-manifest.json").write_text(json.dumps({"weights_sha256": "abc"}))
    assert export_status(model_dir)[0] is None and "缺少" in export_status(model_dir)[1]
    export = onnx_dir_for(model_dir)
    export.mkdir()
    (export / "model.onnx").write_bytes(b"x")
    manifest = {"format_version": 1, "source": {"weights_sha256": "abc"}}
    (export / EXPORT_MANIFEST).write_text(json.dumps(manifest))
    assert export_status(model_dir) == (export / "model.onnx", "")
    (model_dir / "copilot-manifest.json").write_text(json.dumps({"weights_sha256": "rebuilt"}))
    assert export_status(model_dir)[0] is None and "不一致" in export_status(model_dir)[1]


@pytest.mark.models
def test_a_failed_export_falls_back_to_torch_with_a_log_line(models_dir, monkeypatch, caplog):
    import knowledge_base.onnx_embedder as onnx_embedder

    def broken(_path, **_kw):
        raise ModelUnavailable("导出 ONNX 失败（测试）")

    monkeypatch.setattr(onnx_embedder, "ensure_onnx_export", broken)
    with caplog.at_level(logging.WARNING, logger="knowledge_base.embedder"):
        model = load_embedder(None, models_dir=models_dir)
    assert isinstance(model, SentenceTransformerEmbedder)
    assert "falling back to torch" in caplog.text and "copilot models check" in caplog.text


def test_an_unknown_backend_names_the_valid_ones(tmp_path):
    with pytest.raises(ModelUnavailable, match="onnx, torch"):
        load_embedder(None, models_dir=tmp_path, backend="tensorrt")


@pytest.mark.models
def test_the_server_process_searches_the_knowledge_base_without_importing_torch(embedder, tmp_path):
    """The app as `copilot serve` builds it, a document ingested and searched: torch never loads."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text(
        "# 价格异议\n客户说价格太贵时，先确认对比的对象，再讲总拥有成本。\n", encoding="utf-8"
    )
    script = textwrap.dedent(
        f"""
        import sys
        from copilot.api.app import create_app
        from copilot.container import build_container
        services = build_container()
        create_app(services)
        services.kb.ingest({str(docs)!r})
        hits = services.kb.search("客户嫌贵怎么回", k=3)
        assert hits, "no hits"
        print(services.embedder.describe()["backend"], "torch" in sys.modules, len(hits))
        """
    )
    env = {**os.environ, "COPILOT_HOME": str(tmp_path / "home")}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    backend, torch_loaded, _hits = done.stdout.split()
    assert (backend, torch_loaded) == ("onnx", "False")


def test_batches_are_cut_by_length_and_a_token_budget():
    from knowledge_base.onnx_embedder import length_batches

    lengths = [10, 500, 20, 300, 10, 10, 490]
    batches = length_batches(lengths, max_size=3, max_tokens=1000)
    assert batches == [[1, 6], [3, 2, 0], [4, 5]]  # longest first; ≤ 3 texts and ≤ 1000 padded tokens
    assert sorted(n for b in batches for n in b) == list(range(len(lengths)))
    assert length_batches([], max_size=3, max_tokens=1000) == []
