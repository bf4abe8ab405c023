"""Issue #21, row 4: login links carry a one-time code that expires in 10 minutes, never the API token;
`copilot users login-link` and `copilot run` print them; access logs never show query strings."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from datetime import UTC, datetime, timedelta

import httpx
from typer.testing import CliRunner
from uvicorn.logging import AccessFormatter

from copilot.api.access_log import StripQueryString, log_config
from copilot.api.app import create_app
from copilot.cli.main import app as cli
from copilot.identity.sessions import COOKIE_NAME
from tests.support.servers import serve_in_thread

runner = CliRunner()


def test_login_link_command_prints_a_one_time_code_not_a_token(crm_services, client_for):
    result = runner.invoke(cli, ["users", "login-link", "rep_a", "--json"])
    assert result.exit_code == 0, result.output
    link = json.loads(result.stdout)
    assert link["user_id"] == "rep_a" and link["expires_in_s"] == 600
    assert "/login?code=lc_" in link["url"] and "cpt_" not in link["url"]

    client = client_for(crm_services)
    path = link["url"].removeprefix("http://127.0.0.1:8000")
    first = client.get(path, follow_redirects=False)
    assert first.status_code == 303 and COOKIE_NAME in first.cookies
    assert client.get("/api/customers").status_code == 200

    again = client_for(crm_services).get(path, follow_redirects=False)  # the same link, a second time
    assert again.status_code == 401 and "已使用或已过期" in again.text and COOKIE_NAME not in again.cookies

    missing = runner.invoke(cli, ["users", "login-link", "nobody"])
    assert missing.exit_code == 1 and "不存在" in missing.output


def test_a_code_expires_after_ten_minutes(crm_services, client_for):
    codes = crm_services.login_codes
    code = codes.mint("rep_a")
    codes._clock = lambda: datetime.now(UTC) + timedelta(minutes=10, seconds=1)
    assert codes.redeem(code) is None
    codes._clock = lambda: datetime.now(UTC)
    assert codes.redeem(code) is not None  # still unused and (really) in time: it was only refused


def test_an_api_token_in_the_url_no_longer_logs_in(crm_services, client_for):
    client = client_for(crm_services)
    token = crm_services.users.issue_token("rep_a")

    r = client.get(f"/login?token={token}", follow_redirects=False)

    assert r.status_code == 400 and "login-link" in r.text and COOKIE_NAME not in r.cookies
    assert client.get("/api/customers").status_code == 401
    assert r.headers["referrer-policy"] == "no-referrer"


def test_run_prints_login_links_with_codes(crm_services, monkeypatch):
    token = crm_services.users.issue_token("rep_a")
    import copilot.cli.main as main
    import copilot.cli.models_check as models_check
    import copilot.demo.seed as seed

    monkeypatch.setattr(
        seed,
        "seed_if_empty",
        lambda svc, progress, **kw: [{"user_id": "rep_a", "label": "演示销售", "token": token}],
    )
    monkeypatch.setattr(models_check, "check_models", lambda svc, load: [])
    monkeypatch.setattr(main, "serve", lambda host, port: None)

    result = runner.invoke(cli, ["run"])

    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8000/login?code=lc_" in result.stdout
    assert token not in result.stdout and "token=" not in result.stdout


def test_serve_filters_query_strings_out_of_the_access_log(monkeypatch):
    seen = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr("copilot.api.app.create_app", lambda services, **kw: object())
    assert runner.invoke(cli, ["serve", "--no-warm"]).exit_code == 0
    assert seen["log_config"]["loggers"]["uvicorn.access"]["filters"] == ["strip_query"]


def test_a_real_server_logs_the_login_request_without_its_code(crm_services):
    code = crm_services.login_codes.mint("rep_a")
    names = ("uvicorn", "uvicorn.access", "uvicorn.error")
    saved = {
        n: (lg.handlers[:], lg.filters[:], lg.level, lg.propagate)
        for n in names
        for lg in [logging.getLogger(n)]
    }
    logging.config.dictConfig(log_config())  # what `copilot serve` hands uvicorn
    access = logging.getLogger("uvicorn.access")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('"%(request_line)s" %(status_code)s', use_colors=False))
    access.addHandler(handler)
    try:
        with serve_in_thread(
            create_app(crm_services), access_log=True, log_config=None, log_level="info"
        ) as base:
            r = httpx.get(f"{base}/login?code={code}", follow_redirects=False)
    finally:
        for name, (handlers, filters, level, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:], lg.filters[:], lg.level, lg.propagate = handlers, filters, level, propagate
    assert r.status_code == 303
    line = stream.getvalue()
    assert '"GET /login HTTP/1.1" 303' in line and code not in line


def test_the_filter_keeps_everything_but_the_query_string():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4:5", "GET", "/login?code=lc_secret", "1.1", 303), None)  # fmt: skip
    assert StripQueryString().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "GET /login HTTP/1.1" 303'
