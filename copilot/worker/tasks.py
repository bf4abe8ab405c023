"""The Redis job entry point: a `copilot worker` runs every task by name on its own container.

    container.jobs.submit("process_memo", memo_id)   # API process (RedisJobQueue, entry = run_task)
    run_task("process_memo", memo_id)                # worker process → worker_container().tasks[...]

The task names and what they do are the container's ``tasks`` (the in-process queue runs the same
ones): process_memo, handle_messages, channel_memo, answer_aibot, generate_suggestions. Arguments are
plain (ids, frozen dataclasses); effects are idempotent, since delivery is at least once.
"""

from __future__ import annotations

import threading
from typing import Any

from copilot.container import Container, build_container

_lock = threading.Lock()
_container: list[Container] = []


def worker_container() -> Container:
    """This worker process's composition root, built once from the environment (like the CLI's)."""
    with _lock:
        if not _container:
            _container.append(build_container())
        return _container[0]


def run_task(name: str, *args: Any) -> Any:
    return worker_container().run_task(name, *args)
