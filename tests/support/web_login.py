"""Log a test client in as a person does: a one-time login link, then the page's CSRF token."""

from __future__ import annotations

import re

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def web_login(client, services, user_id: str) -> str:
    """Open a web session for ``user_id`` on ``client`` (cookie kept by the client); returns the CSRF
    token its pages carry, to send as ``X-CSRF-Token`` on state changes."""
    code = services.login_codes.mint(user_id)
    response = client.get(f"/login?code={code}", follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


def csrf_of(page: str) -> str:
    match = CSRF_META.search(page)
    assert match, "the page carries no CSRF token"
    return match.group(1)
