"""Request dependencies: typed services of the app's container, and the user taken from the credential
(never the body). Routes ask for what they use (``ConversationDep``, ``SuggesterDep``…); ``ServicesDep``
(the whole container) is for the few that need several parts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from copilot.api.auth import Credential, cached, remember, resolve
from copilot.container import Container

if TYPE_CHECKING:
    from copilot.features.adoption.report import AdoptionService
    from copilot.features.channels.aibot import AIBotService
    from copilot.features.channels.router import ChannelRouter
    from copilot.features.chat.conversation import Conversation
    from copilot.features.memos.pipeline import MemoPipeline
    from copilot.features.suggestions.suggester import Suggester
    from copilot.identity.users import UserDirectory
    from knowledge_base.base import KnowledgeBase
from copilot.domain import User
from copilot.errors import AppError


async def get_services(request: Request) -> Container:
    # async: FastAPI would run a plain ``def`` dependency on the thread pool, a hop on every request
    return request.app.state.services


ServicesDep = Annotated[Container, Depends(get_services)]


def _component(name: str):
    async def get(request: Request):
        return getattr(request.app.state.services, name)

    get.__name__ = f"get_{name}"
    return Depends(get)


ConversationDep = Annotated["Conversation", _component("conversation")]
SuggesterDep = Annotated["Suggester", _component("suggester")]
MemosDep = Annotated["MemoPipeline", _component("memos")]
ChannelsDep = Annotated["ChannelRouter", _component("channels")]
AIBotDep = Annotated["AIBotService", _component("aibot")]
AdoptionDep = Annotated["AdoptionService", _component("adoption")]
KnowledgeBaseDep = Annotated["KnowledgeBase", _component("kb")]
UsersDep = Annotated["UserDirectory", _component("users")]


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


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != "admin":
        raise AppError("forbidden", "该功能仅限管理员使用。")
    return user


UserDep = Annotated[User, Depends(current_user)]
ManagerDep = Annotated[User, Depends(manager_user)]
AdminDep = Annotated[User, Depends(admin_user)]
