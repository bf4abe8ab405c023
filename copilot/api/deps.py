"""Request dependencies: the services, and the user taken from the credential (never the body)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from copilot.api.auth import Credential, cached, remember, resolve
from copilot.domain import User
from copilot.errors import AppError
from copilot.services import Services


async def get_services(request: Request) -> Services:
    # async: FastAPI would run a plain ``def`` dependency on the thread pool, a hop on every request
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def current_credential(request: Request, services: ServicesDep) -> Credential | None:
    """The bearer token or web session of the request (resolved once, by the guard when it ran)."""
    known, credential = cached(request.scope)
    if not known:
        credential = resolve(services, request.headers)
        remember(request.scope, credential)
    return credential


def current_user_or_none(
    credential: Annotated[Credential | None, Depends(current_credential)],
) -> User | None:
    return credential.user if credential is not None else None


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
