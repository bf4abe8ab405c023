from __future__ import annotations

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from copilot.api.deps import ConversationDep, UserDep

router = APIRouter(prefix="/api", tags=["chat"])


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    conversation_id: str | None = Field(default=None, max_length=64)
    customer_id: str | None = Field(default=None, max_length=64)
    as_of: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


@router.post("/chat")
def chat(body: ChatRequest, user: UserDep, conversation: ConversationDep, request: Request) -> dict:
    answer = conversation.reply(user, body.message, customer_id=body.customer_id,
                                conversation_id=body.conversation_id, as_of=body.as_of)  # fmt: skip
    request.app.state.metrics.chat_answers.labels(answer.mode).inc()
    return answer.to_json()


@router.get("/chat/history")
def history(
    user: UserDep,
    conversation: ConversationDep,
    customer_id: str | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> dict:
    """The calling user's own conversation history (per user; optionally for one customer)."""
    return {"messages": conversation.history(user, customer_id=customer_id, limit=limit)}
