"""Issue #21, row 9: pages carry a CSP (self only, no inline script), frame-ancestors none /
X-Frame-Options DENY, nosniff and a Referrer-Policy; the templates have no inline script or style;
/docs is served from this server (no CDN) or turned off; /metrics can require a token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from copilot.container import build_container
from copilot.settings import Settings
from tests.copilot.conftest import token_for
from tests.support.web_login import web_login

TEMPLATES = Path(__file__).resolve().parents[3] / "copilot" / "web" / "templates"


def _csp(response) -> dict[str, str]:
    return {
        d.split()[0]: d
        for d in (p.strip() for p in response.headers["content-security-policy"].split(";"))
        if d
    }


@pytest.mark.parametrize("path", ["/login", "/", "/dashboard", "/docs"])
def test_pages_carry_the_security_headers(crm_services, client_for, path):
    client = client_for(crm_services)
    web_login(client, crm_services, "mgr_a")

    r = client.get(path)

    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = _csp(r)
    assert csp["script-src"] == "script-src 'self'"  # no 'unsafe-inline', no CDN
    assert csp["frame-ancestors"] == "frame-ancestors 'none'" and csp["default-src"] == "default-src 'self'"
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] in ("same-origin", "no-referrer")
    assert not re.search(
        r"https?://(?!127\.0\.0\.1|testserver)", r.text.split("</head>")[0]
    )  # nothing from elsewhere


def test_api_answers_are_locked_down_too(crm_services, client_for):
    r = client_for(crm_services).get("/api/customers", headers=token_for(crm_services, "rep_a"))
    assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"


def test_templates_have_no_inline_script_or_style():
    for template in TEMPLATES.glob("*.html"):
        html = template.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)  # data, not code
        assert not re.search(r"\son[a-z]+=", html), template.name  # no inline event handlers
        assert "style=" not in html and "<style" not in html, template.name


def test_docs_load_swagger_ui_from_this_server(crm_services, client_for):
    client = client_for(crm_services)
    page = client.get("/docs").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert client.get(source).status_code == 200, source
    assert client.get("/redoc").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_docs_can_be_turned_off(monkeypatch, client_for):
    monkeypatch.setenv("COPILOT_API_DOCS", "false")
    client = client_for(build_container(Settings()))
    assert (
        client.get("/docs").status_code == 404
        and client.get("/docs/assets/swagger-ui.css").status_code == 404
    )


def test_metrics_need_the_token_when_one_is_set(monkeypatch, client_for):
    assert (
        client_for(build_container(Settings())).get("/metrics").status_code == 200
    )  # unset: open (documented)
    monkeypatch.setenv("COPILOT_METRICS_TOKEN", "m-secret-1")
    client = client_for(build_container(Settings()))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer m-secret-1"})
    assert ok.status_code == 200 and "copilot_http_requests_total" in ok.text
