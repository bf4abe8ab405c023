"""Export a sentence-transformers folder (BERT-style encoder + mean pooling + normalisation) to ONNX.

Provisioning only: this module imports torch. It runs once per model, in its own process
(``python -m knowledge_base.onnx_export MODEL_DIR OUT_DIR``, started by
``knowledge_base.onnx_embedder.ensure_onnx_export``), so a server never imports torch to get the export.

The graph takes ``input_ids`` and ``attention_mask`` (int64, batch × length) and returns the pooled,
L2-normalised ``sentence_embedding``. Weights go to ``model.onnx.data`` (external data), which
onnxruntime maps into memory: only the rows of the 250k-token embedding table a text uses are paged in.

Before the export is published it is checked against the torch path (sentence-transformers on the same
folder) on a fixed sample: every cosine must be ≥ ``MIN_COSINE``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ONNX_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
OPSET = 17
MIN_COSINE = 0.999

# The fixed sample of the export check: Chinese and English, one-word to paragraph-long, both prompts.
CHECK_SAMPLE = [
    "客户嫌贵咋回",
    "竞品报价比我们低百分之二十，客户要求我们降价",
    "请问你们的系统支持私有化部署吗？",
    "下周三上午去拜访张总，带上方案和报价单",
    "ＡＢＣ全角字符１２３～",
    "《销售话术手册》第3章：异议处理\n客户说价格太贵时，先确认对比的对象，再讲总拥有成本。",
    "The customer is worried about the total cost of ownership.",
    "数据中心 data center 迁移方案",
    "产品资料\n" + "医疗行业的客户最关心数据安全，制造业客户希望能和MES系统打通。" * 30,
]


def _sentence_transformer(model_dir: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


def export(model_dir: Path, out_dir: Path) -> dict[str, object]:
    """Write ``ONNX_FILE`` + ``DATA_FILE`` into ``out_dir`` (which must exist); return export facts."""
    import onnx
    import torch
    from transformers import AutoModel

    # Eager attention: the SDPA path traces shape-dependent branches into constants.
    encoder = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
    encoder.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    # A padded row in the example, so the traced graph keeps the attention mask.
    ids = torch.tensor([[0, 100, 200, 300, 2], [0, 100, 2, 1, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.long)
    tmp_file = out_dir / "single.onnx"
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            Pooled(encoder),
            (ids, mask),
            str(tmp_file),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(tmp_file))
    onnx.save_model(model, str(out_dir / ONNX_FILE), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=DATA_FILE, size_threshold=1024)  # fmt: skip
    tmp_file.unlink()
    return {"opset": OPSET, "torch": torch.__version__, "onnx": onnx.__version__}


def compare_with_torch(model_dir: Path, onnx_dir: Path, texts: list[str] | None = None) -> float:
    """The smallest cosine between the torch path and the ONNX export over ``texts`` (default: the
    fixed check sample, each with the query and the passage prompt)."""
    from knowledge_base.onnx_embedder import OnnxEmbedder

    model = _sentence_transformer(model_dir)
    onnx_model = OnnxEmbedder(model_dir, onnx_dir / ONNX_FILE)
    sample = texts or CHECK_SAMPLE
    lowest = 1.0
    prompts = model.prompts or {}
    for name in ["query", "passage"] if prompts else [None]:
        prompt = prompts.get(name, "") if name else ""
        theirs = model.encode(
            [prompt + t for t in sample], convert_to_numpy=True, normalize_embeddings=True, batch_size=4
        )
        ours = onnx_model.encode_raw([prompt + t for t in sample])
        lowest = min(lowest, float((np.asarray(theirs, dtype=np.float32) * ours).sum(axis=1).min()))
    return lowest


def main(argv: list[str]) -> int:
    model_dir, out_dir = Path(argv[0]), Path(argv[1])
    facts = export(model_dir, out_dir)
    facts["min_cosine"] = round(compare_with_torch(model_dir, out_dir), 6)
    print(json.dumps(facts))
    return 0 if float(facts["min_cosine"]) >= MIN_COSINE else 3


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by ensure_onnx_export
    raise SystemExit(main(sys.argv[1:]))
