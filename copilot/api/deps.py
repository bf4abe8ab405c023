"""Request dependencies: typed services of the app's container, and the user taken from the credential
(never the body). Routes ask for what they use (``ConversationDep``, ``SuggesterDep``…); ``ServicesDep``
(the whole container) is for the few that need several parts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

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
