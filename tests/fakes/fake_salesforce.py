"""A small, stateful Salesforce REST API on 127.0.0.1: SOQL queries (a documented subset),
Composite, sObject upsert by external ID, update, read; Salesforce's error bodies
(``[{"message", "errorCode", "fields"}]``) and fault injection (500/503, 429 + Retry-After, hangs).

    with running_fake_salesforce() as fake:
        crm = SalesforceCRM(instance_url=fake.url, access_token=fake.token)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes._faults import Faults
from tests.support.servers import serve_in_thread

READ_ONLY = {"Id", "CreatedDate", "LastStageChangeDate", "CompletedDateTime"}
FIELDS = {
    "Account": {"Name", "Tier__c", "Industry", "BillingState", "OwnerId", "Description"},
    "Contact": {"AccountId", "FirstName", "LastName", "Name", "Title", "Decision_Maker__c"},
    "Opportunity": {"AccountId", "Name", "StageName", "Amount", "CloseDate"},
    "Event": {
        "WhatId",
        "Subject",
        "Type",
        "IsAllDayEvent",
        "ActivityDate",
        "ActivityDateTime",
        "DurationInMinutes",
    }
    | {"Description", "OwnerId", "Copilot_Key__c", "Copilot_Memo_Id__c"},
    "Task": {"WhatId", "Subject", "ActivityDate", "Status", "Description", "OwnerId", "Copilot_Key__c"}
    | {"Copilot_Kind__c"},
}
PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "Task": "00T", "Event": "00U"}
EXTERNAL_IDS = {"Task": "Copilot_Key__c", "Event": "Copilot_Key__c"}
STAGES = {"Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote"} | {
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
}
TASK_STATUS = {"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"}
_SOQL = re.compile(
    r"^SELECT (?P<fields>.+?) FROM (?P<obj>\w+)(?: WHERE (?P<where>.+?))?"
    r"(?: ORDER BY (?P<order>\w+))?(?: LIMIT (?P<limit>\d+))?$",
    re.S,
)
_COND = re.compile(r"^(\w+) (=|!=|LIKE|IN) (.+)$", re.S)
_STR = re.compile(r"'((?:[^'\\]|\\.)*)'")


class SFError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        self.status, self.body = status, [{"message": message, "errorCode": code, "fields": fields or []}]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class FakeSalesforce:
    def __init__(self, token: str = "sf-test-token", version: str = "v60.0") -> None:
        self.token, self.version = token, version
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in FIELDS}
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PATCH"])])

    # -- state helpers for tests ----------------------------------------------------------
    def add(self, sobject: str, **fields: Any) -> str:
        return self._insert(sobject, fields)

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return list(self.objects[sobject].values())

    def _insert(self, sobject: str, fields: dict[str, Any]) -> str:
        rid = f"{PREFIX[sobject]}{next(self._ids):012d}AAA"
        record = {"Id": rid, "CreatedDate": _now(), **fields}
        if sobject == "Contact":
            record["Name"] = f"{fields.get('LastName', '')}{fields.get('FirstName', '') or ''}"
        if sobject == "Opportunity":
            record["LastStageChangeDate"] = record["CreatedDate"]
        self.objects[sobject][rid] = record
        return rid

    # -- HTTP --------------------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> Response:
        self.requests.append((request.method, request.url.path))
        fault = self.faults.take()
        if fault and fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            code = "REQUEST_LIMIT_EXCEEDED" if fault.status == 429 else "SERVER_UNAVAILABLE"
            return JSONResponse([{"message": "fault injected", "errorCode": code}], fault.status, headers)
        if fault and not fault.after_write:
            await Faults.hang(fault)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401
            )
        body = await request.body()
        try:
            status, payload = self._handle(request.method, request.url.path, dict(request.query_params), body)
        except SFError as exc:
            status, payload = exc.status, exc.body
        if fault and fault.after_write:
            await Faults.hang(fault)
        return Response(status_code=204) if status == 204 else JSONResponse(payload, status)

    def _handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        import json

        base = f"/services/data/{self.version}"
        if not path.startswith(base):
            raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
        rest = path[len(base) :].strip("/").split("/")
        data = json.loads(body) if body else None
        if rest == ["query"] and method == "GET":
            return 200, self._query(query.get("q", ""))
        if rest == ["composite"] and method == "POST":
            return 200, self._composite(data)
        if rest[0] == "sobjects" and len(rest) == 4 and method == "PATCH":
            return self._upsert(rest[1], rest[2], rest[3], data or {})
        if rest[0] == "sobjects" and len(rest) == 3 and method == "PATCH":
            return self._update(rest[1], rest[2], data or {})
        if rest[0] == "sobjects" and len(rest) == 3 and method == "GET":
            record = self.objects.get(rest[1], {}).get(rest[2])
            if record is None:
                raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
            return 200, self._out(rest[1], record, None)
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")

    def _composite(self, data: dict[str, Any]) -> dict[str, Any]:
        out = []
        for sub in data["compositeRequest"]:
            parts = urlsplit(sub["url"])
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            try:
                status, body = self._handle(sub["method"], parts.path, query, b"")
            except SFError as exc:
                status, body = exc.status, exc.body
            out.append(
                {"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": sub["referenceId"]}
            )
        return {"compositeResponse": out}

    # -- SOQL (subset: =, !=, LIKE, IN joined by AND; ORDER BY one field; LIMIT) ------------------
    def _query(self, soql: str) -> dict[str, Any]:
        m = _SOQL.match(soql.strip())
        if not m or m["obj"] not in FIELDS:
            raise SFError(400, "MALFORMED_QUERY", f"unexpected token in: {soql[:80]}")
        obj, known = m["obj"], FIELDS[m["obj"]] | READ_ONLY
        fields = [f.strip() for f in m["fields"].split(",")]
        conds = [self._cond(c, known, obj) for c in (m["where"].split(" AND ") if m["where"] else [])]
        rows = [r for r in self.objects[obj].values() if all(c(r) for c in conds)]
        for f in fields + ([m["order"]] if m["order"] else []):
            if f not in known:
                raise SFError(400, "INVALID_FIELD", f"No such column '{f}' on entity '{obj}'.")
        if m["order"]:
            rows.sort(key=lambda r: (r.get(m["order"]) is None, str(r.get(m["order"]) or "")))
        rows = rows[: int(m["limit"])] if m["limit"] else rows
        return {"totalSize": len(rows), "done": True, "records": [self._out(obj, r, fields) for r in rows]}

    @staticmethod
    def _cond(text: str, known: set[str], obj: str):
        m = _COND.match(text.strip())
        if not m:
            raise SFError(400, "MALFORMED_QUERY", f"unexpected token: {text[:40]}")
        field, op, raw = m.groups()
        if field not in known:
            raise SFError(400, "INVALID_FIELD", f"No such column '{field}' on entity '{obj}'.")
        literals = _STR.findall(raw)
        values = [re.sub(r"\\(.)", r"\1", v) for v in literals]
        if op == "IN":
            return lambda r: r.get(field) in values
        if op == "LIKE":
            # % and _ are wildcards unless escaped (\% \_), as in SOQL
            tokens = re.findall(r"\\.|.", literals[0], re.S)
            wild = {"%": ".*", "_": "."}
            pattern = re.compile(
                "^" + "".join(wild.get(t) or re.escape(t[-1]) for t in tokens) + "$", re.I | re.S
            )
            return lambda r: r.get(field) is not None and bool(pattern.match(str(r[field])))
        if op == "=":
            return lambda r: r.get(field) == values[0]
        return lambda r: r.get(field) != values[0]

    def _out(self, obj: str, record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        attributes = {"type": obj, "url": f"/services/data/{self.version}/sobjects/{obj}/{record['Id']}"}
        chosen = fields or sorted(FIELDS[obj] | READ_ONLY)
        return {"attributes": attributes, **{f: record.get(f) for f in chosen}}

    # -- writes ------------------------------------------------------------------------------
    def _validate(self, obj: str, data: dict[str, Any], merged: dict[str, Any]) -> None:
        for f in data:
            if f in READ_ONLY or (obj == "Contact" and f == "Name"):
                raise SFError(
                    400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {f}.", [f]
                )
            if f not in FIELDS[obj]:
                raise SFError(400, "INVALID_FIELD", f"No such column '{f}' on sobject of type {obj}", [f])
        if "WhatId" in data and data["WhatId"] not in self.objects["Account"]:
            raise SFError(
                400, "FIELD_INTEGRITY_EXCEPTION", "Related To ID: id value of incorrect type", ["WhatId"]
            )
        if obj == "Task" and merged.get("Status", "Not Started") not in TASK_STATUS:
            raise SFError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                "Status: bad value for restricted picklist field",
            )
        if obj == "Opportunity" and merged.get("StageName") not in STAGES:
            raise SFError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Stage: bad value for restricted picklist field: {merged.get('StageName')}",
                ["StageName"],
            )
        if obj == "Event":
            needed = (
                ["ActivityDate"] if merged.get("IsAllDayEvent") else ["ActivityDateTime", "DurationInMinutes"]
            )
            missing = [f for f in needed if not merged.get(f)]
            if missing:
                raise SFError(
                    400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing
                )

    def _upsert(self, obj: str, field: str, value: str, data: dict[str, Any]) -> tuple[int, Any]:
        if obj not in FIELDS:
            raise SFError(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
        if EXTERNAL_IDS.get(obj) != field:
            raise SFError(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}"
            )
        matches = [r for r in self.objects[obj].values() if r.get(field) == value]
        merged = {**(matches[0] if matches else {}), **data}
        self._validate(obj, data, merged)
        if matches:
            self._set(obj, matches[0], data)
            return 200, {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}
        rid = self._insert(obj, {**data, field: value})
        self._set(obj, self.objects[obj][rid], {})
        return 201, {"id": rid, "success": True, "errors": [], "created": True}

    def _update(self, obj: str, rid: str, data: dict[str, Any]) -> tuple[int, Any]:
        record = self.objects.get(obj, {}).get(rid)
        if record is None:
            raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
        self._validate(obj, data, {**record, **data})
        self._set(obj, record, data)
        return 204, None

    @staticmethod
    def _set(obj: str, record: dict[str, Any], data: dict[str, Any]) -> None:
        if obj == "Opportunity" and "StageName" in data and data["StageName"] != record.get("StageName"):
            record["LastStageChangeDate"] = _now()
        record.update(data)
        if obj == "Task" and record.get("Status") == "Completed" and not record.get("CompletedDateTime"):
            record["CompletedDateTime"] = _now()


@contextmanager
def running_fake_salesforce(**kw: Any) -> Iterator[FakeSalesforce]:
    fake = FakeSalesforce(**kw)
    with serve_in_thread(fake.app) as url:
        fake.url = url
        yield fake
