"""Shared CLI plumbing: building services once, printing JSON, Chinese errors with exit codes."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:  # the container pulls in FastAPI, SQLAlchemy…: only commands that need it pay for it
    from copilot.container import Container

_services: dict[str, Container] = {}


def services() -> Container:
    """The CLI's composition root: one Container per process, built from the environment."""
    if "s" not in _services:
        from copilot.container import build_container

        _services["s"] = build_container()
    return _services["s"]


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"错误：{message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def server_report(path: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The report of a running `copilot serve` of this home (copilot.cli.local_server), or None: then
    the command builds it in-process. A refusal by the server ends the command with its message."""
    from copilot.cli.local_server import ServerError, ask

    try:
        return ask(path, params)
    except ServerError as exc:
        fail(exc.detail)
