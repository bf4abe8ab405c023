"""Request dependencies: the services, and the user taken from the credential (never the body)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from copilot.container import Container
from copilot.domain import User
from copilot.errors import AppError


async def get_services(request: Request) -> Container:
    # async: FastAPI would run a plain ``def`` dependency on the thread pool, a hop on every request
    return request.app.state.services


ServicesDep = Annotated[Container, Depends(get_services)]


def current_user_or_none(request: Request, services: ServicesDep) -> User | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return services.users.authenticate(token.strip())
    user_id = request.session.get("user_id") if "session" in request.scope else None
    return services.users.get(user_id) if user_id else None


def current_user(user: Annotated[User | None, Depends(current_user_or_none)]) -> User:
    if user is None:
        raise AppError("unauthenticated")
    return user


def manager_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_manager:
        raise AppError("forbidden", "该功能仅限经理或管理员使用。")
    return user


UserDep = Annotated[User, Depends(current_user)]
ManagerDep = Annotated[User, Depends(manager_user)]
