"""The composition root builds heavy components lazily, exactly once, even under concurrency."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from copilot.container import build_container
from copilot.settings import Settings


@pytest.mark.timeout(300)
def test_kb_and_its_embedder_load_once_across_threads(models_dir):
    services = build_container(Settings())

    with ThreadPoolExecutor(4) as pool:
        kbs = list(pool.map(lambda _: services.kb, range(4)))

    assert all(kb is kbs[0] for kb in kbs)
    assert services.embedder is services.embedder
    assert services.embedder.embed_queries(["客户嫌贵"]).shape == (1, 384)


def test_cheap_commands_do_not_load_models():
    services = build_container(Settings())
    services.users.count()
    assert "_embedder" not in services.__dict__ and "_kb" not in services.__dict__
