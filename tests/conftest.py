"""Test-wide fixtures: a network guard (pytest-socket, 127.0.0.1 only, set in pyproject), a scrubbed
environment and temporary COPILOT_HOME per test, and the bundled models shared per worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS_DIR = Path(os.environ.get("COPILOT_TEST_MODELS_DIR", REPO / ".cache" / "models"))
_SCRUB_PREFIXES = ("COPILOT_", "OPENAI_")
_SCRUB_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No test sees the developer's keys, proxies or data directory."""
    for name in list(os.environ):
        if name.startswith(_SCRUB_PREFIXES) or name in _SCRUB_NAMES:
            monkeypatch.delenv(name, raising=False)
    if "COPILOT_TEST_MODELS_DIR" in os.environ:
        monkeypatch.setenv("COPILOT_TEST_MODELS_DIR", str(MODELS_DIR))
    monkeypatch.setenv("COPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COPILOT_MODELS_DIR", str(MODELS_DIR))
    # Tests call the API faster than any person; the abuse limits have their own tests, which turn them on.
    monkeypatch.setenv("COPILOT_RATE_LIMITS", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    return MODELS_DIR


@pytest.fixture(scope="session")
def embedder(models_dir):
    """The real bundled embedding model on its default runtime (onnxruntime), loaded once per test
    worker; the ONNX export is made once into the shared models folder (under a file lock)."""
    from knowledge_base.embedder import load_embedder

    return load_embedder(None, models_dir=models_dir)


@pytest.fixture(scope="session")
def torch_embedder(models_dir):
    """The same model through sentence-transformers (torch): the fallback runtime and the reference."""
    from knowledge_base.embedder import load_embedder

    return load_embedder(None, models_dir=models_dir, backend="torch")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the repository")
    return SHARED


@pytest.fixture(autouse=True)
def fresh_cli_services():
    """The CLI builds its services once per process; each test gets its own (its own COPILOT_HOME)."""
    from copilot.cli import common

    common._services.clear()
    yield
    common._services.clear()


POSTGRES_URL = os.environ.get(
    "COPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database on 127.0.0.1 for one test; dropped afterwards."""
    from tests.support.pg_fresh import fresh_database

    with fresh_database(POSTGRES_URL, prefix="copilot_test") as url:
        yield url
