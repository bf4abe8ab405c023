"""`copilot worker`: run job workers on the Redis queue (DESIGN §3, §5.2)."""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlparse

import typer

from copilot.cli.common import emit_json, fail
from copilot.infra.jobs.port import DEFAULT_LEASE_S, DEFAULT_QUEUE, JOB_NICENESS, lower_priority

NO_REDIS = (
    "未设置 COPILOT_REDIS_URL：默认情况下任务在服务进程内运行，无需启动 copilot worker。"
    "如需独立的任务进程，请设置 COPILOT_REDIS_URL=redis://主机:6379/0 后重试。"
)


def worker(
    processes: Annotated[
        int, typer.Option("--processes", "-n", min=1, help="工作进程数（进程意外退出会自动重启）")
    ] = 1,
    queue: Annotated[
        str | None, typer.Option(help=f"队列名（默认取 COPILOT_REDIS_QUEUE，未设置时为 {DEFAULT_QUEUE}）")
    ] = None,
    lease_s: Annotated[
        int,
        typer.Option("--lease-s", min=2, help="任务租约（秒）：工作进程失联超过此时间，任务交给其他进程重试"),
    ] = DEFAULT_LEASE_S,
    burst: Annotated[bool, typer.Option("--burst", help="处理完队列中已有的任务后退出")] = False,
    status: Annotated[
        bool, typer.Option("--status", help="只显示队列状态（排队、执行中、失败、工作进程数）")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="与 --status 一起使用：输出一个 JSON 文档")] = False,
    nice: Annotated[
        int, typer.Option("--nice", min=0, max=19, help="降低任务进程的 CPU 优先级，让 API 的回调确认优先")
    ] = JOB_NICENESS,
) -> None:
    """任务工作进程（Redis 模式）：执行转写、导入、CRM 写入、渠道回复等后台任务。"""
    from redis.exceptions import RedisError

    from copilot.infra.jobs.redis_queue import RedisJobQueue
    from copilot.settings import Settings
    from copilot.worker.run import run_workers

    settings = Settings()
    url = settings.redis_url
    if not url:
        fail(NO_REDIS)
    queue = queue or settings.redis_queue
    os.environ["COPILOT_REDIS_QUEUE"] = queue  # follow-up jobs of this worker's jobs go to the same queue
    try:
        if status:
            stats = {"queue": queue, **RedisJobQueue(url, queue_name=queue).stats()}
            if as_json:
                emit_json(stats)
            else:
                typer.echo(
                    f"队列 {queue}：排队 {stats['queued']}，执行中 {stats['started']}，等待重试 {stats['scheduled']}，"
                    f"失败 {stats['failed']}，工作进程 {stats['workers']}"
                )
            return
        typer.echo(f"销售副驾任务进程：队列 {queue}，{processes} 个进程，租约 {lease_s} 秒", err=True)
        lower_priority(nice)
        # In Redis mode the API does not deliver the CRM outbox; the worker's parent process does.
        from copilot.cli.common import services
        from copilot.features.writeback.delivery import OutboxLoop

        container = services()
        loop = None if burst else OutboxLoop(container.writeback.tick, settings.outbox_interval_s).start()
        try:
            run_workers(url, queue_name=queue, processes=processes, lease_s=lease_s, burst=burst)
        finally:
            if loop is not None:
                loop.stop()
    except RedisError as exc:
        where = urlparse(url)
        fail(
            f"无法连接 Redis（{where.hostname}:{where.port or 6379}）：{type(exc).__name__}，请检查 Redis 是否在运行"
        )
