"""Reliability of the scale-out deployment with real `copilot serve` processes on PostgreSQL (+ Redis):
an API killed with CRM writes still pending, PostgreSQL going away and coming back, duplicate webhook
deliveries spread over two API processes, and migrations run by processes starting together.

Fakes stand only at process boundaries (Salesforce and WeCom servers on 127.0.0.1); assertions count
what reached them and the rows in the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from connectors.channels.wecom import build_envelope
from connectors.crm.local import LocalCRM
from connectors.crm.salesforce import external_key
from copilot.domain import Citation, ProposedChange, Suggestion
from copilot.features.crm_import import CRMImporter
from copilot.features.suggestions.suggester import SuggestionStore
from copilot.identity.users import UserDirectory
from copilot.storage import tables as t
from copilot.storage.db import make_engine, migrate
from tests.connectors.crm.test_salesforce import seed
from tests.copilot.channels.conftest import AES_KEY, AGENT_ID, CORP_ID, TOKEN, wecom_crypto, wecom_text_xml
from tests.copilot.conftest import DATA
from tests.fakes._faults import Fault, Faults
from tests.fakes.fake_salesforce import FakeSalesforce, running_fake_salesforce
from tests.fakes.fake_wecom import FakeWeCom
from tests.support.processes import REPO, ProcessGroup, copilot_env, wait_for
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


def _prepare(url: str) -> tuple[Engine, UserDirectory]:
    """Schema + the small test CRM's teams and users (rep_a is WeCom ``lilei``; ``admin`` sees all)."""
    engine = make_engine(url)
    migrate(engine)
    users = UserDirectory(engine)
    CRMImporter(engine, LocalCRM(engine), users).import_file(DATA / "crm_small.json")
    return engine, users


def _count(engine: Engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


# -- a. the API is killed while CRM writes are pending ------------------------------------------------


class WritesDown(Faults):
    """Salesforce in read-only maintenance: reads answer, every write (PATCH) answers 503."""

    def __init__(self, fake: FakeSalesforce) -> None:
        super().__init__()
        self.fake = fake
        self.writes_down = True

    def take(self) -> Fault | None:
        method, _path = self.fake.requests[-1]  # the request being handled (recorded just before)
        if self.writes_down and method == "PATCH":
            return Fault(status=503)
        return super().take()


def _suggestion(engine: Engine, user_id: str, customer_id: str, i: int) -> str:
    cite = Citation(
        "crm",
        f"{customer_id}.visits",
        f"row {i + 1}",
        f"crm: {customer_id}.visits",
        "上门拜访",
        "依据拜访记录",
    )
    suggestion = Suggestion(
        id="",
        customer_id=customer_id,
        action_type="follow_up_quote",
        title=f"回访任务{i}",
        rationale="客户关注价格，需跟进报价",
        confidence=0.8,
        citations=(cite,),
        proposed_change=ProposedChange("create_task", {"customer_id": customer_id, "title": f"回访任务{i}"}),
        status="proposed",
        created_at="",
    )
    (stored,) = SuggestionStore(engine).upsert(user_id, [suggestion])
    return stored.id


def _outbox(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.outbox).order_by(t.outbox.c.id)).mappings()]


def _audit(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t.audit_log)).mappings()]


def _quiet(engine: Engine) -> bool:
    """No outbox row is being delivered, and none is due within the next half second."""
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
        busy = conn.execute(
            select(func.count()).where(
                t.outbox.c.status == "pending",
                (t.outbox.c.locked_until > now) | (t.outbox.c.next_attempt_at < now + timedelta(seconds=0.5)),
            )
        ).scalar_one()
    return busy == 0


def test_pending_crm_writes_survive_an_api_kill_and_are_delivered_exactly_once(postgres_url, tmp_path):
    n = 4
    engine, users = _prepare(postgres_url)
    with running_fake_salesforce() as fake, ProcessGroup(tmp_path / "logs") as procs:
        account, _ = seed(fake)
        fake.faults = WritesDown(fake)
        env = copilot_env(
            home=tmp_path / "home",
            database_url=postgres_url,
            COPILOT_CRM="salesforce",
            COPILOT_SALESFORCE_INSTANCE_URL=fake.url,
            COPILOT_SALESFORCE_ACCESS_TOKEN=fake.token,
            COPILOT_OUTBOX_INTERVAL_S="0.2",
            COPILOT_CRM_SYNC_INTERVAL_S="0",
        )
        headers = {"Authorization": f"Bearer {users.issue_token('admin')}"}
        sids = [_suggestion(engine, "admin", account, i) for i in range(n)]

        first = procs.serve(env)
        for sid in sids:  # the rep confirms while Salesforce takes no writes
            r = httpx.post(f"{first.url}/api/suggestions/{sid}/apply", json={}, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["result"]["status"] == "pending" and not r.json()["result"]["duplicate"], r.text
        fake.faults.down = True  # …then Salesforce goes away altogether while the API keeps retrying
        wait_for(lambda: all(row["attempts"] >= 2 for row in _outbox(engine)), 30, "the outbox loop retrying")
        wait_for(lambda: _quiet(engine), 15, "a moment with no delivery in flight", step=0.01)
        procs.kill(first, signal.SIGKILL)
        assert [row["status"] for row in _outbox(engine)] == ["pending"] * n

        fake.faults.writes_down = fake.faults.down = False  # Salesforce is back
        seen = len(fake.requests)
        second = procs.serve(env)
        wait_for(
            lambda: all(row["status"] == "delivered" for row in _outbox(engine)),
            45,
            f"the restarted API to deliver the outbox\n{second.output()[-3000:]}",
        )
        time.sleep(1.0)  # several more ticks of the loop: nothing may be written again
        writes = [path for method, path in fake.requests[seen:] if method == "PATCH"]
        tasks = [r for r in fake.records("Task") if r.get("Copilot_Key__c")]
        procs.kill(second, signal.SIGTERM)

    rows = _outbox(engine)
    keys = [f"{sid}:create_task" for sid in sids]
    assert sorted(row["idempotency_key"] for row in rows) == sorted(keys)
    # At the CRM: one record per confirmed write (0 lost, 0 duplicated), written by one request each.
    assert sorted(task["Copilot_Key__c"] for task in tasks) == sorted(external_key(k) for k in keys)
    assert sorted(task["Subject"] for task in tasks) == [f"回访任务{i}" for i in range(n)]
    assert sorted(writes) == sorted(
        f"/services/data/{fake.version}/sobjects/Task/Copilot_Key__c/{external_key(k)}" for k in keys
    )
    assert {row["result"]["id"] for row in rows} == {task["Id"] for task in tasks}
    assert all(row["attempts"] >= 3 and row["last_error"] is None for row in rows)
    # The audit log: one entry per write, by the rep who confirmed it, made when it was confirmed.
    audit = _audit(engine)
    assert sorted(a["idempotency_key"] for a in audit) == sorted(keys)
    assert {(a["user_id"], a["action"], a["target"]) for a in audit} == {
        ("admin", "crm.create_task", f"customer:{account}")
    }
    ev = t.suggestion_events.c
    assert _count(engine, t.suggestion_events, ev.event == "applied") == n
    engine.dispose()


# -- b. PostgreSQL goes away and comes back -------------------------------------------------------------


def test_database_outage_answers_503_db_unavailable_and_recovers_by_itself(postgres_url, tmp_path):
    engine, users = _prepare(postgres_url)
    headers = {"Authorization": f"Bearer {users.issue_token('rep_a')}"}
    url = make_url(postgres_url)
    with (
        TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy,
        ProcessGroup(tmp_path / "logs") as procs,
    ):
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        api = procs.serve(copilot_env(home=tmp_path / "home", database_url=via_proxy))
        with httpx.Client(base_url=api.url, headers=headers, timeout=30) as client:
            assert client.get("/api/customers").status_code == 200

            proxy.cut()
            requests = [("GET", "/api/customers"), ("GET", "/api/customers/c_a1"),
                        ("GET", "/api/notifications"), ("POST", "/api/suggestions/sg_0/feedback")]  # fmt: skip
            for method, path in requests:
                started = time.monotonic()
                r = client.request(method, path, json={"action": "dismiss"} if method == "POST" else None)
                elapsed = time.monotonic() - started
                assert r.status_code == 503, (path, r.status_code, r.text)
                body = r.json()
                assert body["error"] == "db_unavailable" and "数据库暂不可用" in body["detail"], body
                assert body["request_id"] == r.headers["x-request-id"] and r.headers["retry-after"]
                assert elapsed < 5, f"{path} took {elapsed:.1f} s to fail"
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["db"].startswith("error")
            assert api.alive()

            proxy.restore()  # nobody restarts anything
            wait_for(lambda: client.get("/api/customers").status_code == 200, 15, "the API to reconnect")
            assert [c["id"] for c in client.get("/api/customers").json()["customers"]] == ["c_a1"]
            assert client.get("/healthz").json()["db"] == "ok"
        log = api.output()
    assert "database unavailable: OperationalError" in log and "unhandled" not in log
    engine.dispose()


# -- c. duplicate WeCom deliveries over two API processes ------------------------------------------------


@pytest.fixture
def own_queue(redis_url) -> Iterator[str]:
    """A Redis queue name of this test's own (COPILOT_REDIS_QUEUE): no other worker takes its jobs."""
    from redis import Redis

    queue = f"copilot-test-{uuid.uuid4().hex[:8]}"
    yield queue
    client = Redis.from_url(redis_url)
    for key in client.scan_iter(f"*{queue}*"):
        client.delete(key)
    client.close()


@pytest.mark.redis
def test_a_message_delivered_six_times_to_two_api_processes_is_answered_once(
    postgres_url, redis_url, own_queue, tmp_path
):
    engine, _ = _prepare(postgres_url)
    with (
        FakeWeCom.running(corp_id=CORP_ID, secret="wecom-secret") as wecom,
        ProcessGroup(tmp_path / "logs") as procs,
    ):
        env = copilot_env(
            home=tmp_path / "home",
            database_url=postgres_url,
            COPILOT_REDIS_URL=redis_url,
            COPILOT_REDIS_QUEUE=own_queue,
            COPILOT_WECOM_CORP_ID=CORP_ID,
            COPILOT_WECOM_AGENT_ID=AGENT_ID,
            COPILOT_WECOM_SECRET="wecom-secret",
            COPILOT_WECOM_TOKEN=TOKEN,
            COPILOT_WECOM_AES_KEY=AES_KEY,
            COPILOT_WECOM_API_BASE=wecom.url,
        )
        apis = [procs.serve(env), procs.serve(env)]
        procs.start(env, "worker", name="worker")  # replies that run as Redis jobs run here

        # 「确认 1」 from rep_a with nothing shown yet: answered without the KB or a model.
        enc = wecom_crypto().encrypt(wecom_text_xml("确认 1", msg_id="7100000000000000001"))
        params = {"msg_signature": enc.signature, "timestamp": enc.timestamp, "nonce": enc.nonce}
        body = build_envelope(to_user=CORP_ID, agent_id=AGENT_ID, encrypt=enc.encrypt).encode()
        targets = [api.url for api in apis for _ in range(3)]
        barrier = threading.Barrier(len(targets))
        statuses: list[int] = []

        def deliver(base: str) -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                barrier.wait(10)
                statuses.append(
                    client.post("/channels/wecom/callback", params=params, content=body).status_code
                )

        threads = [threading.Thread(target=deliver, args=(base,)) for base in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert statuses == [200] * len(targets)

        [sent] = wecom.wait_for_sent(1, timeout=30)
        cm = t.channel_messages
        wait_for(lambda: _count(engine, cm, cm.c.status != "received"), 30, "the message to be marked done")
        time.sleep(1.0)  # any second reply would have been sent by now
        assert len(wecom.sent) == 1, wecom.sent
    assert sent["touser"] == "lilei" and "没有找到第 1 条建议" in sent["text"]["content"]
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(t.channel_messages)).mappings()]
    assert [(r["channel"], r["msg_id"], r["status"], r["user_id"]) for r in rows] == [
        ("wecom", "7100000000000000001", "replied", "rep_a")
    ]
    engine.dispose()


# -- migrations run by processes starting together ---------------------------------------------------


_MIGRATE = """
import sys, time
from copilot.storage.db import make_engine, migrate
engine = make_engine(sys.argv[1])
with engine.connect():  # connected before the start, so both upgrades begin together
    pass
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
migrate(engine)
print("migrated")
"""


def test_two_processes_migrating_a_fresh_database_at_once_both_succeed(postgres_url):
    start_at = time.time() + 4.0  # both interpreters are up and connected by then
    procs = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", _MIGRATE, postgres_url, str(start_at)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=90)[0])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    assert all(out.strip().endswith("migrated") for out in outputs), outputs
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    from alembic.script import ScriptDirectory

    from copilot.storage.db import alembic_config

    assert versions == [ScriptDirectory.from_config(alembic_config(engine)).get_current_head()]
    migrate(engine)  # and a third, later, is a no-op
    engine.dispose()
