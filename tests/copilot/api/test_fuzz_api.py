"""Systematic bad input on the real app (in-process ASGI; the same create_app(build_container(...))).

1. Schema-based fuzzing (schemathesis): every operation of our OpenAPI gets a fixed, derandomized
   number of generated requests, valid and invalid, each from a rep or a manager with a real bearer
   token. Checks: no 5xx, the response conforms to its declared schema (errors:
   ``{"error","detail","request_id"}``), and a rejected request (4xx) leaves every table as it was.
2. What a schema does not describe: malformed JSON, JSON nested too deep, wrong content types,
   non-UTF-8 bytes in bodies, query strings, headers and multipart fields, huge query strings.

The services are built once for the module (the KB ingest with the real embedder is the slow part).
The memo pipeline never runs: its job queue drops the work, so Whisper is not loaded. The app's
lifespan is not run either (no outbox loop), so every write seen during a request is that request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import column, func, inspect, select, table

from copilot.api.app import create_app
from copilot.container import build_container
from copilot.features.adoption.report import EXPORTS
from copilot.features.crm_import import CRMImporter
from copilot.settings import Settings
from tests.conftest import MODELS_DIR, POSTGRES_URL
from tests.copilot.conftest import BACKEND, DATA
from tests.support.pg_fresh import fresh_database

MAX_EXAMPLES = 15  # per operation and per mode (valid, invalid)
ROLES = ("rep_a", "mgr_a")
AS_OF = "2026-11-20"
HUGE = 100_000  # characters in a "huge" query value
CHANNEL_ENV = {  # configured channels, so callbacks reach signature checks (unconfigured: 503 by design)
    "COPILOT_WECOM_CORP_ID": "wwcorp0001",
    "COPILOT_WECOM_AGENT_ID": "1000002",
    "COPILOT_WECOM_SECRET": "wecom-secret",
    "COPILOT_WECOM_TOKEN": "QDG6eK",
    "COPILOT_WECOM_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "COPILOT_WECOM_API_BASE": "http://127.0.0.1:9",
    "COPILOT_WECOM_AIBOT_TOKEN": "QDG6eK",
    "COPILOT_WECOM_AIBOT_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "COPILOT_DINGTALK_APP_KEY": "dingkey",
    "COPILOT_DINGTALK_APP_SECRET": "dingsecret",
    "COPILOT_DINGTALK_ROBOT_CODE": "dingrobot",
    "COPILOT_DINGTALK_API_BASE": "http://127.0.0.1:9",
    "COPILOT_DINGTALK_OAPI_BASE": "http://127.0.0.1:9",
}


class DroppedJobs:
    """A job queue that runs nothing: memo uploads are stored and queued, never transcribed."""

    def submit(self, fn, *args) -> None:
        pass


def without_lifespan(app):
    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan under the fuzzer")  # raised before any message = unsupported
        await app(scope, receive, send)

    return asgi


class Rows:
    """Row counts of every table in one query, to show that a rejected request stored nothing."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.names = [n for n in inspect(engine).get_table_names() if n != "alembic_version"]
        self.query = select(
            *[select(func.count()).select_from(table(n)).scalar_subquery() for n in self.names]
        )

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return dict(zip(self.names, conn.execute(self.query).one(), strict=True))


class Api:
    """The app under test, the callers' tokens and a tally of what the fuzzer sent and got back."""

    def __init__(self, services) -> None:
        self.services = services
        self.fastapi = create_app(services)
        self.app = without_lifespan(self.fastapi)
        self.tokens = {role: services.users.issue_token(role) for role in ROLES}
        self.rows = Rows(services.engine)
        self.statuses: dict[str, dict[int, int]] = {}
        self.seconds: dict[str, float] = {}

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def record(self, label: str, status: int, seconds: float) -> None:
        by_status = self.statuses.setdefault(label, {})
        by_status[status] = by_status.get(status, 0) + 1
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds

    @property
    def cases(self) -> int:
        return sum(sum(s.values()) for s in self.statuses.values())

    def raw(self, method: str, path: str, query: bytes = b"", headers=(), body: bytes = b"", role="rep_a"):
        """One request as raw ASGI (bytes a client library would refuse to send); (status, body)."""
        auth = [(b"authorization", self.headers(role)["Authorization"].encode())] if role else []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": query, "headers": [(b"host", b"testserver"), *auth, *headers],
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        }  # fmt: skip
        return asyncio.run(_call(self.app, scope, body))


async def _call(app, scope, body: bytes) -> tuple[int, bytes]:
    sent = False
    out: list[dict] = []

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        out.append(message)

    with contextlib.suppress(Exception):  # Starlette re-raises after sending its 500; the status tells
        await app(scope, receive, send)
    status = next(m["status"] for m in out if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")


@contextlib.contextmanager
def database_url(postgres: bool):
    """None (SQLite in COPILOT_HOME), or the URL of a fresh PostgreSQL database, dropped afterwards."""
    if not postgres:
        yield None
        return
    with fresh_database(POSTGRES_URL, prefix="copilot_fuzz") as url:
        yield url


@contextlib.contextmanager
def seeded_api(home, embedder, *, postgres: bool):
    """The app on the small CRM + KB (real embedder) with the channels configured; SQLite in ``home``
    or a fresh PostgreSQL database."""
    env = {**CHANNEL_ENV, "COPILOT_HOME": str(home), "COPILOT_MODELS_DIR": str(MODELS_DIR)}
    with database_url(postgres) as url:
        with pytest.MonkeyPatch.context() as mp:
            for name in list(os.environ):
                if name.startswith(("COPILOT_", "OPENAI_")):
                    mp.delenv(name)
            for name, value in {**env, **({"COPILOT_DATABASE_URL": url} if url else {})}.items():
                mp.setenv(name, value)
            services = build_container(Settings())
        try:
            CRMImporter(services.engine, services.local_crm, services.users).import_file(
                DATA / "crm_small.json"
            )
            services.provide("embedder", embedder)
            services.kb.ingest([DATA / "kb"])
            services.provide("jobs", DroppedJobs())
            yield Api(services)
        finally:
            services.engine.dispose()


@pytest.fixture(scope="module")
def api(tmp_path_factory, embedder) -> Api:
    """Built once for the module; COPILOT_TEST_BACKEND=postgres runs it on PostgreSQL."""
    with seeded_api(
        tmp_path_factory.mktemp("fuzz") / "home", embedder, postgres=BACKEND == "postgres"
    ) as built:
        yield built


def _existing_ids(services) -> dict[str, list]:
    """Ids that exist, so that generated requests get past the 404s as well as hitting them."""
    sg = services.suggester
    suggestion_ids = []
    for user, customer in (("rep_a", "c_a1"), ("rep_b", "c_b1")):
        result = sg.for_customer(services.users.get(user), customer, as_of=AS_OF, channel="web")
        suggestion_ids += [s.id for s in result.suggestions]
    with services.engine.connect() as conn:
        memo_ids = list(conn.execute(select(table("memos", column("id")).c.id)).scalars())
    assert suggestion_ids and memo_ids
    return {
        "customer_id": ["c_a1", "c_a2", "c_b1"],
        "suggestion_id": suggestion_ids,
        "memo_id": memo_ids,
        "name": list(EXPORTS),
    }


def load_schema(api: Api):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    existing = _existing_ids(api.services)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        swaps = {k: existing[k] for k in path_parameters or {} if k in existing}
        if not swaps:
            return st.just(path_parameters)
        return st.one_of(
            st.just(path_parameters),
            st.fixed_dictionaries({k: st.sampled_from(v) for k, v in swaps.items()}).map(
                lambda chosen: {**path_parameters, **chosen}
            ),
        )

    return schema


def fuzz_operation(api: Api, operation, mode: GenerationMode, hooks) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same cases on every run and machine
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # report the first failure as found, without shrinking
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, hooks=hooks), role=st.sampled_from(ROLES))
    def fuzz(case, role):
        before = api.rows.counts()
        started = time.perf_counter()
        response = case.call_and_validate(
            headers=api.headers(role), checks=[not_a_server_error, response_schema_conformance]
        )
        api.record(operation.label, response.status_code, time.perf_counter() - started)
        if 400 <= response.status_code < 500:
            assert api.rows.counts() == before, f"{response.status_code} but rows were stored"
            body = response.json()
            assert set(body) == {"error", "detail", "request_id"}, body
            assert [body["request_id"]] == response.headers["x-request-id"]

    fuzz()


def test_fuzzed_requests_never_get_a_5xx_or_an_off_schema_answer_and_rejected_ones_store_nothing(api):
    schema = load_schema(api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    failures, nothing_to_negate = [], []
    started = time.perf_counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(api, operation, mode, schema.hooks)
            except Unsatisfiable:  # e.g. one string path parameter: every value is valid
                assert mode is GenerationMode.NEGATIVE, operation.label
                nothing_to_negate.append(operation.label)
            except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure at once
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:4000])
    elapsed = time.perf_counter() - started
    print(
        f"\nfuzz: {api.cases} cases over {len(operations)} operations in {elapsed:.1f} s; {len(failures)} failing"
    )
    print("no invalid input to generate for:", ", ".join(nothing_to_negate))
    for label, statuses in sorted(api.statuses.items()):
        print(f"  {label}: {dict(sorted(statuses.items()))}  {api.seconds[label]:.1f} s")
    assert not failures, "\n\n".join(failures)
    assert set(api.statuses) == {op.label for op in operations}
    assert api.cases >= len(operations) * MAX_EXAMPLES
    statuses = {status for by_status in api.statuses.values() for status in by_status}
    assert {200, 403, 404, 422} <= statuses, statuses  # the fuzzer got through as well as being refused


# -- inputs outside the schema ------------------------------------------------------------------------
BAD_BODIES = {
    "truncated JSON": (b'{"message": "', "application/json"),
    "not JSON": (b"message=hi", "application/json"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "deep inside an object": (
        b'{"message": "hi", "edited": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
        "application/json",
    ),
    "invalid UTF-8": (b'{"message": "\xff\xfe\xc3\x28"}', "application/json"),
    "latin-1 declared": ('{"message": "é"}'.encode("latin-1"), "application/json; charset=latin-1"),
    "NaN and huge int": (b'{"message": NaN, "customer_id": ' + b"9" * 5000 + b"}", "application/json"),
    "null": (b"null", "application/json"),
    "array": (b"[1, 2]", "application/json"),
    "empty": (b"", "application/json"),
    "text/plain": (b'{"message": "hi", "action": "accept"}', "text/plain"),
    "form": (b"message=hi&action=accept", "application/x-www-form-urlencoded"),
    "XML": (b"<xml><message>hi</message></xml>", "application/xml"),
    "junk content type": (b'{"message": "hi"}', "application/json\xff; charset=\xfe"),
    "multipart, no boundary": (b"--x\r\n", "multipart/form-data"),
    "multipart, cut short": (
        b'--b\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\nc_a1',
        "multipart/form-data; boundary=b",
    ),
    "multipart, non-UTF-8 fields": (
        b'--b\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\n\xff\xfe\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="\xff\xfe.amr"\r\n\r\n#!AMR\n\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
    ),
}


# Well-formed JSON with strings a database may refuse (PostgreSQL: NUL) or a codec may choke on.
ODD_BODIES = {
    "NUL in every field": (
        b'{"message": "\\u0000", "action": "accept\\u0000", "chunk_id": "\\u0000", "rating": "\\u0000", "verdict": "\\u0000", "yaml": 1}',
        "application/json",
    ),  # fmt: skip
    "lone surrogates": (
        b'{"message": "\\ud800", "action": "\\udfff", "chunk_id": "\\udfff", "rating": "\\ud800", "verdict": "\\ud800"}',
        "application/json",
    ),  # fmt: skip
}


NO_BODY = {"null", "empty"}  # the same as sending no body, which an optional body allows


def _operations(api: Api) -> list[tuple[str, str, dict]]:
    spec = api.fastapi.openapi()
    return [(method.upper(), path, op) for path, item in spec["paths"].items() for method, op in item.items()]


def _concrete(path: str) -> str:
    return (
        path.replace("{customer_id}", "c_a1").replace("{name}", "summary").replace("{notification_id}", "1")
    )


def test_malformed_bodies_get_a_4xx_in_the_error_shape_and_store_nothing(api):
    existing = _existing_ids(api.services)
    sg_id, memo_id = existing["suggestion_id"][0], existing["memo_id"][0]
    targets = [
        (
            method,
            _concrete(path).replace("{suggestion_id}", sg_id).replace("{memo_id}", memo_id),
            op["requestBody"].get("required", False),
        )
        for method, path, op in _operations(api)
        if "requestBody" in op and path.startswith("/api/")
    ]
    assert len(targets) >= 8
    sent = 0
    for role in ROLES:
        for method, path, required in targets:
            for name, (body, content_type) in {**BAD_BODIES, **ODD_BODIES}.items():
                before = api.rows.counts()
                status, raw = api.raw(method, path, headers=[(b"content-type", content_type.encode("latin-1"))],
                                      body=body, role=role)  # fmt: skip
                sent += 1
                if name in ODD_BODIES or (not required and name in NO_BODY):  # e.g. apply takes {} or nothing
                    assert status < 500, (role, method, path, name, status, raw[:300])
                    if status < 400:
                        continue
                assert 400 <= status < 500, (role, method, path, name, status, raw[:300])
                error = json.loads(raw)
                assert set(error) == {"error", "detail", "request_id"}, (path, name, error)
                assert api.rows.counts() == before, (role, method, path, name, "stored rows")
    print(f"\n{sent} malformed or odd bodies, no 5xx; every 4xx stored nothing")


def test_huge_and_non_utf8_query_strings_never_get_a_5xx(api):
    gets = [(path, op) for method, path, op in _operations(api) if method == "GET"]
    huge = ("订单" * (HUGE // 2)).encode()
    junk = [
        b"\xff\xfe\x00",
        b"%FF%FE%00%C3%28",
        b"\xc3\x28" * (HUGE // 2),
        huge,
        b"%25" * (HUGE // 3),
    ]
    sent = 0
    for role in ROLES:
        for path, op in gets:
            names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"] or ["q"]
            for value in junk:
                for query in (b"&".join(n.encode() + b"=" + value for n in names), value, b"&" * 10_000):
                    status, raw = api.raw("GET", _concrete(path).replace("{suggestion_id}", "sg_x").replace("{memo_id}", "memo_x"),
                                          query=query, role=role)  # fmt: skip
                    sent += 1
                    assert status < 500, (role, path, query[:80], status, raw[:300])
    print(f"\n{sent} huge or non-UTF-8 query strings, no 5xx")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"authorization", b"Bearer \xff\xfe\x00")],
        [(b"authorization", b"Bearer " + b"x" * HUGE)],
        [(b"authorization", b"\xff\xfe")],
        [(b"cookie", b"copilot_session=\xff\xfe" + b"A" * 5000)],
        [(b"x-request-id", b"\xff\xfe" * 50)],
        [(b"content-type", b"\xff/\xfe"), (b"accept", b"\xff")],
    ],
    ids=[
        "non-UTF-8 token",
        "huge token",
        "no scheme",
        "garbage session",
        "non-UTF-8 request id",
        "junk types",
    ],
)
def test_non_utf8_and_huge_headers_get_a_4xx_or_are_ignored(api, headers):
    anonymous = any(name in (b"authorization", b"cookie") for name, _ in headers)
    for path in ("/api/customers", "/api/kb/search", "/api/adoption"):
        status, raw = api.raw("GET", path, query=b"q=%E8%AE%A2%E5%8D%95", headers=headers, role=None if anonymous else "mgr_a")  # fmt: skip
        assert status < 500, (path, status, raw[:300])
        if anonymous:
            assert status == 401 and json.loads(raw)["error"] == "unauthenticated"


def test_openapi_documents_the_error_shape_that_is_sent(api):
    from fastapi.testclient import TestClient

    spec = TestClient(api.app).get("/openapi.json").json()
    operations = _operations(api)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "detail", "request_id"]
    for method, path, op in operations:
        if "422" in op["responses"]:
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
        if path.startswith("/api/"):
            assert {"4XX", "5XX"} <= set(op["responses"]), (method, path)


def test_customer_search_longer_than_the_limit_is_a_422_not_a_500(api):
    status, raw = api.raw("GET", "/api/customers", query=b"q=" + b"x" * 60_000)
    assert status == 422 and json.loads(raw)["error"] == "validation_error"
    status, raw = api.raw("GET", "/api/customers", query=b"q=%E5%8D%8E%E6%98%9F")  # 华星
    assert status == 200 and [c["id"] for c in json.loads(raw)["customers"]] == ["c_a1"]
