"""Web login (session cookie) and the web chat page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from copilot.api.deps import ServicesDep, current_user_or_none
from copilot.domain import User

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[2] / "web" / "templates"))
router = APIRouter(include_in_schema=False)

MaybeUser = Annotated[User | None, Depends(current_user_or_none)]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, services: ServicesDep, token: str | None = None):
    if token:  # one-click links printed by `copilot run`
        return _login(request, services, token)
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, services: ServicesDep, token: Annotated[str, Form()]):
    return _login(request, services, token)


def _login(request: Request, services, token: str):
    user = services.users.authenticate(token.strip())
    if user is None:
        return templates.TemplateResponse(
            request, "login.html", {"error": "令牌无效或已吊销，请向管理员重新获取。"}, status_code=401
        )
    request.session.clear()
    request.session["user_id"] = user.id
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request):
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_class=HTMLResponse)
def chat_page(request: Request, user: MaybeUser, services: ServicesDep):
    if user is None:
        return RedirectResponse("/login", status_code=303)
    from copilot.identity.access import customers_for

    customers = customers_for(user, crm=services.crm, users=services.users)
    return templates.TemplateResponse(request, "chat.html", {"user": user, "customers": customers})
