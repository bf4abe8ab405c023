from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from knowledge_base.base import KnowledgeBase
from tests.knowledge_base.corpus import build_corpus


@pytest.fixture(scope="session")
def corpus_template(tmp_path_factory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("corpus") / "kb")


@pytest.fixture
def corpus(tmp_path, corpus_template) -> Path:
    """A private copy of the sample knowledge base folder (tests may edit it)."""
    return Path(shutil.copytree(corpus_template, tmp_path / "kb"))


@pytest.fixture
def make_kb(tmp_path, embedder):
    """Build a KnowledgeBase over a SQLite file and an embedded Chroma folder (reopenable)."""
    engines = []

    def build(name: str = "kb") -> KnowledgeBase:
        engine = sa.create_engine(f"sqlite:///{tmp_path / (name + '.db')}")
        engines.append(engine)
        return KnowledgeBase(engine=engine, embedder=embedder, chroma_path=tmp_path / f"chroma-{name}")

    yield build
    for engine in engines:
        engine.dispose()
