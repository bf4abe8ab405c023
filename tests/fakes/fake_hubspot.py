"""A small, stateful HubSpot CRM (v3 objects, v4 associations) on 127.0.0.1.

Every request and every response is validated against HubSpot's official OpenAPI specs, read from
``<repo>/../shared/specs/hubspot`` (never copied here): an invalid request gets HubSpot's 400
``VALIDATION_ERROR``; a response the spec would reject is a bug in the fake, recorded in
``violations`` (tests assert it stays empty). Faults: 500/503, 429 + Retry-After, bounded hangs.
"""

from __future__ import annotations

import itertools
import json
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.fakes._faults import Faults
from tests.support.servers import serve_in_thread

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "hubspot"
TYPES = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-27": "tasks",
    "0-46": "notes",
    "0-47": "meetings",
}
TYPES |= {"contact": "contacts", "company": "companies", "deal": "deals", "task": "tasks", "note": "notes"}
TYPES |= {"meeting": "meetings"}
SPEC_OF = {
    "contacts": "contacts",
    "companies": "companies",
    "deals": "deals",
    "tasks": "tasks",
    "notes": "notes",
}
SPEC_OF |= {"meetings": "meetings", "calls": "calls"}
PROPS = {
    "companies": {
        "name",
        "industry",
        "state",
        "hubspot_owner_id",
        "description",
        "hs_ideal_customer_profile",
    },
    "contacts": {"firstname", "lastname", "jobtitle", "hs_buying_role"},
    "deals": {"dealname", "dealstage", "amount", "closedate", "createdate", "deal_currency_code", "pipeline"},
    "tasks": {"hs_timestamp", "hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_completion_date"},
    "notes": {"hs_timestamp", "hs_note_body"},
    "meetings": {
        "hs_timestamp",
        "hs_meeting_title",
        "hs_activity_type",
        "hs_meeting_body",
        "hs_meeting_outcome",
    },
}
ENGAGEMENTS = {"tasks", "notes", "meetings"}
UNIQUE = "copilot_key"  # the custom "unique value" property on engagements
DEAL_STAGES = {"appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin"}
DEAL_STAGES |= {"contractsent", "closedwon", "closedlost"}


@cache
def _spec(name: str) -> OpenAPI:
    return OpenAPI.from_file_path(str(SPECS / f"{name}.json"))


@cache
def _error_validator(name: str) -> OAS30Validator:
    """Error responses are declared as ``*/*``, which openapi-core does not parse: check the JSON
    body against the spec's own ``Error`` schema directly."""
    components = json.loads((SPECS / f"{name}.json").read_text())["components"]
    return OAS30Validator({"$ref": "#/components/schemas/Error", "components": components})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Req:  # openapi-core's request protocol
    def __init__(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict, body: bytes
    ) -> None:
        self.host_url, self.path, self.method = "https://api.hubapi.com", path, method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query), header=Headers(headers), cookie=ImmutableMultiDict()
        )
        self.body, self.content_type = body or None, "application/json"


class _Resp:
    def __init__(self, status: int, data: bytes) -> None:
        self.status_code, self.data, self.content_type, self.headers = (
            status,
            data,
            "application/json",
            Headers(),
        )


class HSError(Exception):
    def __init__(self, status: int, category: str, message: str) -> None:
        self.status, self.category, self.message = status, category, message


class FakeHubSpot:
    def __init__(self, token: str = "hs-test-token") -> None:
        self.token, self.url = token, ""
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in PROPS}
        self.links: set[tuple[str, str, str, str]] = set()  # (type, id, type, id), both directions
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self._ids = itertools.count(1001)
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PATCH", "PUT"])]
        )

    # -- state helpers for tests -------------------------------------------------------------
    def add(self, object_type: str, properties: dict[str, str], *, company: str | None = None) -> str:
        oid = str(next(self._ids))
        now = _now()
        self.objects[object_type][oid] = {
            "id": oid,
            "properties": dict(properties),
            "createdAt": now,
            "updatedAt": now,
        }
        if company:
            self._link(object_type, oid, "companies", company)
        return oid

    def records(self, object_type: str) -> list[dict[str, Any]]:
        return list(self.objects[object_type].values())

    def linked(self, object_type: str, oid: str, to_type: str) -> list[str]:
        return sorted((t[3] for t in self.links if t[:3] == (object_type, oid, to_type)), key=int)

    def _link(self, a_type: str, a_id: str, b_type: str, b_id: str) -> None:
        self.links |= {(a_type, a_id, b_type, b_id), (b_type, b_id, a_type, a_id)}

    # -- HTTP ----------------------------------------------------------------------------------
    def _spec_for(self, path: str) -> str | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["crm", "v4"]:
            return "associations"
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) > 3:
            return SPEC_OF.get(TYPES.get(parts[3], parts[3]))
        return "pipelines" if parts[:3] == ["crm", "v3", "pipelines"] else None

    async def _endpoint(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        self.requests.append((method, path))
        body = await request.body()
        spec_name = self._spec_for(path)
        if spec_name is None:
            self.violations.append(f"no HubSpot spec has {method} {path}")
            return self._error(
                _Req(method, path, [], {}, b""), None, HSError(404, "OBJECT_NOT_FOUND", "Not found")
            )
        spec = _spec(spec_name)
        oreq = _Req(method, path, list(request.query_params.multi_items()), dict(request.headers), body)
        fault = self.faults.take()
        if fault and fault.status:
            category = "RATE_LIMITS" if fault.status == 429 else "INTERNAL_ERROR"
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._error(oreq, spec, HSError(fault.status, category, "fault injected"), headers)
        if fault and not fault.after_write:
            await Faults.hang(fault)
        try:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                raise HSError(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    spec.validate_request(oreq)
                except Exception as exc:  # noqa: BLE001 - openapi-core's validation errors
                    raise HSError(400, "VALIDATION_ERROR", f"Invalid input: {exc}") from exc
            status, payload = self._handle(
                method, path, request.query_params, json.loads(body) if body else None
            )
        except HSError as exc:
            return self._error(oreq, spec, exc)
        data = json.dumps(payload).encode()
        self._check_response(spec, oreq, status, data)
        if fault and fault.after_write:
            await Faults.hang(fault)
        return Response(data, status, media_type="application/json")

    def _check_response(self, spec: OpenAPI | None, oreq: _Req, status: int, data: bytes) -> None:
        if spec is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                spec.validate_response(oreq, _Resp(status, data))
            except Exception as exc:  # noqa: BLE001
                self.violations.append(f"{oreq.method} {oreq.path} → {status}: {exc}")

    def _error(self, oreq: _Req, spec: OpenAPI | None, exc: HSError, headers: dict | None = None) -> Response:
        body = {
            "status": "error",
            "message": exc.message,
            "correlationId": str(uuid.uuid4()),
            "category": exc.category,
        }
        data = json.dumps(body).encode()
        if spec is not None:
            errors = [e.message for e in _error_validator(self._spec_for(oreq.path)).iter_errors(body)]
            self.violations.extend(f"{oreq.method} {oreq.path} → {exc.status}: {e}" for e in errors)
        return Response(data, exc.status, headers=headers, media_type="application/json")

    # -- operations ------------------------------------------------------------------------------
    def _handle(self, method: str, path: str, query, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[1] == "v4":  # /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}
            a_type, a_id, b_type, b_id = (
                TYPES.get(parts[3], parts[3]),
                parts[4],
                TYPES.get(parts[7], parts[7]),
                parts[8],
            )
            self._obj(a_type, a_id)
            self._obj(b_type, b_id)
            self._link(a_type, a_id, b_type, b_id)
            spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}
            result = {"from": {"id": a_id}, "to": {"id": b_id}, "associationSpec": spec}
            return 200, self._batch([result])
        otype, rest = TYPES.get(parts[3], parts[3]), parts[4:]
        if otype not in PROPS:
            raise HSError(404, "OBJECT_NOT_FOUND", f"Unknown object type {parts[3]}")
        if rest == ["search"]:
            return 200, self._search(otype, body)
        if rest == ["batch", "read"]:
            found = [self._obj(otype, i["id"]) for i in body["inputs"] if i["id"] in self.objects[otype]]
            return 200, self._batch([self._out(o, body["properties"]) for o in found])
        if rest == ["batch", "upsert"]:
            return 200, self._batch([self._upsert(otype, i) for i in body["inputs"]])
        if len(rest) == 1 and method == "GET":
            obj = self._obj(otype, rest[0])
            out = self._out(obj, query.getlist("properties"))
            wanted = [TYPES.get(a, a) for a in query.getlist("associations") for a in a.split(",")]
            if wanted:
                out["associations"] = {
                    t: {
                        "results": [
                            {"id": i, "type": f"{otype[:-1]}_to_{t[:-1]}"}
                            for i in self.linked(otype, obj["id"], t)
                        ]
                    }
                    for t in wanted
                    if self.linked(otype, obj["id"], t)
                }
            return 200, out
        if len(rest) == 1 and method == "PATCH":
            obj = self._obj(otype, rest[0])
            self._set(otype, obj, body["properties"])
            return 200, self._out(obj, list(body["properties"]))
        raise HSError(404, "OBJECT_NOT_FOUND", "Not found")

    def _obj(self, otype: str, oid: str) -> dict[str, Any]:
        if oid not in self.objects.get(otype, {}):
            raise HSError(404, "OBJECT_NOT_FOUND", f"Object not found.  objectId are usually numeric: {oid}")
        return self.objects[otype][oid]

    def _set(self, otype: str, obj: dict[str, Any], props: dict[str, str]) -> None:
        allowed = PROPS[otype] | ({UNIQUE, "copilot_memo_id"} if otype in ENGAGEMENTS else set())
        unknown = sorted(set(props) - allowed)
        if unknown:
            raise HSError(
                400, "VALIDATION_ERROR", f'Property values were not valid: "{unknown[0]}" does not exist'
            )
        if otype == "deals" and "dealstage" in props and props["dealstage"] not in DEAL_STAGES:
            raise HSError(400, "VALIDATION_ERROR", f"{props['dealstage']} was not one of the allowed options")
        obj["properties"].update(props)
        obj["updatedAt"] = _now()

    def _upsert(self, otype: str, item: dict[str, Any]) -> dict[str, Any]:
        if item.get("idProperty") != UNIQUE or otype not in ENGAGEMENTS:
            raise HSError(400, "VALIDATION_ERROR", f"{item.get('idProperty')} is not a unique value property")
        match = [o for o in self.objects[otype].values() if o["properties"].get(UNIQUE) == item["id"]]
        if match:
            obj, new = match[0], False
        else:
            if "hs_timestamp" not in item["properties"]:
                raise HSError(
                    400, "VALIDATION_ERROR", 'Property values were not valid: "hs_timestamp" is required'
                )
            obj, new = self.objects[otype][self.add(otype, {})], True
        self._set(otype, obj, {**item["properties"], UNIQUE: item["id"]})
        return {**self._out(obj, list(obj["properties"])), "new": new}

    def _search(self, otype: str, body: dict[str, Any]) -> dict[str, Any]:
        def ok(o: dict[str, Any]) -> bool:
            p = o["properties"]
            if body.get("query") and not any(body["query"] in (v or "") for v in p.values()):
                return False
            groups = body.get("filterGroups") or [{"filters": []}]
            return any(all(self._match(p, f) for f in g["filters"]) for g in groups)

        found = sorted((o for o in self.objects[otype].values() if ok(o)), key=lambda o: int(o["id"]))
        return {
            "total": len(found),
            "results": [self._out(o, body.get("properties") or []) for o in found[: body["limit"]]],
        }

    @staticmethod
    def _match(props: dict[str, str], f: dict[str, Any]) -> bool:
        value = props.get(f["propertyName"])
        if f["operator"] == "IN":
            return value in f.get("values", [])
        if f["operator"] == "EQ":
            return value == f.get("value")
        raise HSError(400, "VALIDATION_ERROR", f"operator {f['operator']} is not supported by this fake")

    @staticmethod
    def _out(obj: dict[str, Any], properties: list[str]) -> dict[str, Any]:
        names = [p for ps in properties for p in ps.split(",")]
        props = {k: v for k, v in obj["properties"].items() if k in names}
        props |= {
            "hs_object_id": obj["id"],
            "hs_createdate": obj["createdAt"],
            "hs_lastmodifieddate": obj["updatedAt"],
        }
        base = {
            "id": obj["id"],
            "properties": props,
            "createdAt": obj["createdAt"],
            "updatedAt": obj["updatedAt"],
        }
        return {**base, "archived": False}

    @staticmethod
    def _batch(results: list[dict[str, Any]]) -> dict[str, Any]:
        now = _now()
        return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}


@contextmanager
def running_fake_hubspot(**kw: Any) -> Iterator[FakeHubSpot]:
    if not SPECS.is_dir():
        import pytest

        pytest.skip(f"HubSpot specs not found at {SPECS}")
    fake = FakeHubSpot(**kw)
    with serve_in_thread(fake.app) as url:
        fake.url = url
        yield fake
