"""Shared CLI plumbing: building services once, printing JSON, Chinese errors with exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from copilot.container import Container, build_container

_services: dict[str, Container] = {}


def services() -> Container:
    """The CLI's composition root: one Container per process, built from the environment."""
    if "s" not in _services:
        _services["s"] = build_container()
    return _services["s"]


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"错误：{message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)
