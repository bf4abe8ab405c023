"""`copilot models check`: the embedding runtime is reported, and the ONNX export is re-checked against
the torch path (cosine ≥ 0.999 on a fixed sample)."""

import json

import pytest
from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.main import app

runner = CliRunner()


def _check() -> dict:
    result = runner.invoke(app, ["models", "check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    return report["models"][0]


@pytest.mark.models
def test_models_check_verifies_the_onnx_export_against_torch(embedder):
    common.services().provide("embedder", embedder)
    status = _check()
    assert status["backend"] == "onnx" and status["ok"] is True and status["dim"] == 384
    assert status["onnx"].endswith("multilingual-e5-small.onnx/model.onnx")
    assert status["onnx_min_cosine"] >= 0.999


@pytest.mark.models
def test_models_check_on_the_torch_runtime_skips_the_export(torch_embedder, monkeypatch):
    monkeypatch.setenv("COPILOT_EMBED_BACKEND", "torch")
    common.services().provide("embedder", torch_embedder)
    status = _check()
    assert status["backend"] == "torch" and "onnx_min_cosine" not in status and "warning" not in status


@pytest.mark.models
def test_models_check_says_how_to_fix_a_fallback_to_torch(torch_embedder):
    common.services().provide("embedder", torch_embedder)  # as if the export had failed
    status = _check()
    assert status["backend"] == "torch"
    assert "已退回 torch" in status["warning"] and "copilot models check" in status["warning"]
