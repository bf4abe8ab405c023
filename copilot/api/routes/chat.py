from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from copilot.api.deps import ServicesDep, UserDep

router = APIRouter(prefix="/api", tags=["chat"])


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    customer_id: str | None = None


@router.post("/chat")
def chat(body: ChatRequest, user: UserDep, services: ServicesDep, request: Request) -> dict:
    answer = services.conversation.reply(user, body.message, customer_id=body.customer_id)
    request.app.state.metrics.chat_answers.labels(answer.mode).inc()
    return answer.to_json()
