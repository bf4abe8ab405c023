"""The CLI in about a second: `copilot kb search` / `copilot suggest` ask a running `copilot serve` of the
same home (``<home>/run/server.json``, ``/api/local/*``) and print exactly what the in-process path prints;
`copilot --help` and `copilot outbox list` import no model runtime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from copilot.api.app import create_app
from copilot.api.routes.local_cli import token_sha256
from copilot.cli import common, local_server
from copilot.cli.main import app
from tests.copilot.conftest import DATA, token_for
from tests.support.processes import BIN, REPO, ProcessGroup, copilot_env, wait_for

runner = CliRunner()
HEAVY = ("torch", "chromadb", "faster_whisper", "sentence_transformers", "ctranslate2", "onnxruntime")
AS_OF = "2026-11-20"


def _cli(*args: str) -> dict:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("args", [["--help"], ["outbox", "list", "--json"], ["kb", "--help"]])
def test_help_and_outbox_list_import_no_model_runtime(args):
    probe = (
        "import json, sys\n"
        "from copilot.cli.main import app\n"
        f"sys.argv = ['copilot', *{args!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\n"
        f"print(json.dumps({{'code': code, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run(  # noqa: S603 -- our own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, out.stderr[-2000:]


def test_local_routes_take_only_the_servers_cli_token_from_loopback(crm_services):
    token = local_server.new_token()
    application = create_app(crm_services, local_cli_token_sha256=token_sha256(token))
    url = f"/api/local/suggest?customer=c_a1&as_of={AS_OF}"
    with TestClient(application, client=("127.0.0.1", 50000)) as local:
        assert local.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert local.get(url, headers=token_for(crm_services, "rep_a")).status_code == 401
        assert local.get(url, headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        assert local.get(url).status_code == 401
        refused = local.get("/api/local/suggest?customer=nope", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 404 and refused.json()["detail"] == "客户 nope 不存在"
        # the token opens nothing else
        assert local.get("/api/customers", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with TestClient(application, client=("10.0.0.7", 50000)) as remote:
        assert remote.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with TestClient(create_app(crm_services), client=("127.0.0.1", 50000)) as off:
        assert off.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_local_routes_refuse_a_request_relayed_by_a_proxy(crm_services):
    # uvicorn takes the client address from X-Forwarded-For when it trusts the peer (FORWARDED_ALLOW_IPS=*
    # in a container, or a proxy on the same machine): a remote caller must not become "loopback" so.
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    token = local_server.new_token()
    application = create_app(crm_services, local_cli_token_sha256=token_sha256(token))
    url = f"/api/local/suggest?customer=c_a1&as_of={AS_OF}"
    auth = {"Authorization": f"Bearer {token}"}
    trusting = ProxyHeadersMiddleware(application, trusted_hosts="*")
    with TestClient(trusting, client=("203.0.113.9", 50000)) as remote:
        assert remote.get(url, headers={**auth, "X-Forwarded-For": "127.0.0.1"}).status_code == 401
    with TestClient(application, client=("127.0.0.1", 50000)) as local:
        for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
            assert local.get(url, headers={**auth, header: "198.51.100.4"}).status_code == 401
        assert local.get(url, headers=auth).status_code == 200


def test_the_run_file_is_private_even_over_a_stale_temporary_file(tmp_path):
    stale = tmp_path / "run" / f".server.json.{os.getpid()}"
    stale.parent.mkdir()
    stale.write_text("{}")
    stale.chmod(0o644)  # left by someone else, or a crash with another umask
    with local_server.advertised("http://127.0.0.1:9", local_server.new_token(), tmp_path) as path:
        assert path is not None and path.stat().st_mode & 0o777 == 0o600


def test_no_usable_server_means_in_process(tmp_path, monkeypatch):
    home = Path(os.environ["COPILOT_HOME"])
    assert local_server.server() is None  # no run file
    with local_server.advertised("http://127.0.0.1:9", local_server.new_token(), home) as path:
        assert path is not None and path.stat().st_mode & 0o777 == 0o600
        assert local_server.server() is None  # alive pid (ours), but nothing answers /healthz
        data = json.loads(path.read_text())
        data["pid"] = 2**22 + 12345  # a dead process
        path.write_text(json.dumps(data))
        assert local_server._read_run_file() is None
        data["pid"] = os.getpid()
        path.write_text(json.dumps(data))
        monkeypatch.setenv("COPILOT_CRM", "hubspot")  # started with other settings: not the same data
        assert local_server._read_run_file() is None
    assert not (home / local_server.RUN_FILE).exists()  # removed when the server stops
    assert local_server.client_url("10.1.2.3", 8000) is None  # only loopback is advertised


def test_kb_search_and_suggest_through_a_running_server_print_what_in_process_prints(tmp_path, embedder):
    common.services().provide("embedder", embedder)
    _cli("crm", "import", str(DATA / "crm_small.json"), "--json")
    _cli("kb", "ingest", str(DATA / "kb"), "--json")
    searches = [("客户嫌贵怎么回", "-k", "3", "--user", "rep_a"), ("海拓物联 传感器寿命", "-k", "10")]
    expected_kb = [_cli("kb", "search", *args, "--json") for args in searches]
    expected_sg = _cli("suggest", "--customer", "c_a1", "--as-of", AS_OF, "--json")
    assert expected_sg["suggestions"] and all(r["results"] for r in expected_kb)

    home = Path(os.environ["COPILOT_HOME"])
    env = copilot_env(home=home, database_url=os.environ.get("COPILOT_DATABASE_URL")
                      or f"sqlite:///{home.resolve() / 'copilot.db'}")  # fmt: skip
    env["COPILOT_RATE_LIMITS"] = os.environ["COPILOT_RATE_LIMITS"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 -- our own console script
            [str(BIN / "copilot"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
        )

    with ProcessGroup(tmp_path / "logs") as procs:
        api = procs.serve(env, timeout=180, warm=True)
        run_file = home / local_server.RUN_FILE
        assert run_file.stat().st_mode & 0o777 == 0o600
        token = json.loads(run_file.read_text())["token"]
        wait_for(lambda: '"embedding":"loaded"' in _healthz(api.url), 180, "the server's warm-up", step=0.5)

        for args, expected in zip(searches, expected_kb, strict=True):
            got = cli("kb", "search", *args, "--json")
            assert got.returncode == 0, got.stderr
            assert json.loads(got.stdout) == expected
        got = cli("suggest", "--customer", "c_a1", "--as-of", AS_OF, "--json")
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout) == expected_sg
        missing = cli("suggest", "--customer", "nope", "--json")
        assert missing.returncode == 1 and "客户 nope 不存在" in missing.stderr

        log = api.output()
        assert log.count("GET /api/local/kb/search") == 2 and log.count("GET /api/local/suggest") == 2
        assert token not in log and "客户嫌贵" not in log  # neither the credential nor the query is logged
        procs.kill(api, signal.SIGTERM, timeout=60)
        assert not run_file.exists()  # removed on shutdown


def _healthz(url: str) -> str:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=5).text.replace(" ", "")
    except httpx.HTTPError:
        return ""
