"""HubSpot CRM v3 adapter: company = customer; contacts, deals (``dealstage``), meetings (visits),
tasks and notes as engagements associated with the company (associations v4).

Idempotency: tasks, notes and meetings carry ``copilot_key``, a custom text property created with
"unique value" (``hasUniqueValue: true``), and are written with batch upsert by that property
(``POST /crm/v3/objects/tasks/batch/upsert``, ``idProperty: copilot_key``): a retry after a timeout
where HubSpot did write updates the same record. Search-before-create would not do, since HubSpot's
search index lags writes by seconds. Associating is ``PUT …/associations/default/…``: idempotent.
Deals are addressed as ``0-3``, as in HubSpot's published OpenAPI spec.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.crm.base import (
    Contact,
    CRMRef,
    CustomerSnapshot,
    CustomerSummary,
    NoteDraft,
    Opportunity,
    StageUpdate,
    Task,
    TaskDraft,
    Visit,
    VisitDraft,
)
from connectors.crm.errors import CRMRejected
from connectors.crm.transport import send
from connectors.http import make_client

# Our stages → dealstage ids of HubSpot's default sales pipeline; data, not code.
DEFAULT_STAGE_MAP = {
    "线索": "appointmentscheduled",
    "需求确认": "qualifiedtobuy",
    "方案报价": "presentationscheduled",
    "商务谈判": "decisionmakerboughtin",
    "赢单": "closedwon",
    "输单": "closedlost",
}
TIERS = {"tier_1": "A", "tier_2": "B", "tier_3": "C"}  # hs_ideal_customer_profile
KEY_PROPERTY = "copilot_key"
DEALS = "0-3"
COMPANY_PROPS = ["name", "industry", "state", "hubspot_owner_id", "description", "hs_ideal_customer_profile"]


def _describe(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200], None
    if isinstance(body, dict):
        return str(body.get("message", "")), body.get("category") or body.get("errorType")
    return "", None


def _midnight_utc(day: str | None) -> str:
    d = datetime.fromisoformat(day) if day else datetime.now(UTC)
    return d.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubSpotCRM:
    name = "hubspot"

    def __init__(
        self,
        *,
        base_url: str = "https://api.hubapi.com",
        token: str,
        stage_map: dict[str, str] | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = make_client(
            base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, transport=transport
        )
        self._to_hs = dict(stage_map or DEFAULT_STAGE_MAP)
        self._from_hs = {v: k for k, v in self._to_hs.items()}

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kw) -> httpx.Response:
        return send(self._client, method, path, crm=self.name, describe=_describe, **kw)

    def _get(self, object_type: str, object_id: str, properties: list[str], associations: list[str] = ()):
        params = {"properties": properties, "archived": "false"}
        if associations:
            params["associations"] = list(associations)
        try:
            return self._call("GET", f"/crm/v3/objects/{object_type}/{object_id}", params=params).json()
        except CRMRejected as exc:
            if exc.status == 404:
                return None
            raise

    def _batch_read(self, object_type: str, ids: list[str], properties: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        body = {"inputs": [{"id": i} for i in ids], "properties": properties, "propertiesWithHistory": []}
        results = self._call("POST", f"/crm/v3/objects/{object_type}/batch/read", json=body).json()["results"]
        return sorted(
            results, key=lambda r: (r["properties"].get("hs_timestamp") or r["createdAt"], int(r["id"]))
        )

    # -- reads ------------------------------------------------------------------------------
    def list_customers(
        self, *, owner_ids: set[str] | None = None, q: str | None = None
    ) -> list[CustomerSummary]:
        filters = []
        if owner_ids is not None:
            if not owner_ids:
                return []
            filters.append(
                {"propertyName": "hubspot_owner_id", "operator": "IN", "values": sorted(owner_ids)}
            )
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}] if filters else [],
            "sorts": ["hs_object_id"],
            "properties": COMPANY_PROPS,
            "limit": 100,
            "after": "0",
        }
        if q:
            body["query"] = q
        results = self._call("POST", "/crm/v3/objects/companies/search", json=body).json()["results"]
        out = []
        for r in results:
            p = r["properties"]
            tier = TIERS.get(p.get("hs_ideal_customer_profile") or "")
            out.append(
                CustomerSummary(
                    r["id"],
                    p.get("name") or "",
                    tier,
                    p.get("industry"),
                    p.get("state"),
                    p.get("hubspot_owner_id"),
                )
            )
        return out

    def get_customer(self, customer_id: str) -> CustomerSnapshot | None:
        company = self._get(
            "companies", customer_id, COMPANY_PROPS, ["contacts", "deals", "meetings", "tasks"]
        )
        if company is None:
            return None
        linked = {k: [a["id"] for a in v["results"]] for k, v in (company.get("associations") or {}).items()}
        p = company["properties"]
        contacts = self._batch_read(
            "contacts", linked.get("contacts", []), ["firstname", "lastname", "jobtitle", "hs_buying_role"]
        )
        deals = self._batch_read(
            DEALS,
            linked.get("deals", []),
            ["dealname", "dealstage", "amount", "closedate", "createdate", "deal_currency_code"],
        )
        meetings = self._batch_read(
            "meetings",
            linked.get("meetings", []),
            ["hs_timestamp", "hs_activity_type", "hubspot_owner_id", "hs_meeting_body", "copilot_memo_id"],
        )
        tasks = self._batch_read(
            "tasks",
            linked.get("tasks", []),
            ["hs_task_subject", "hs_timestamp", "hs_task_status", "hs_createdate", "hs_task_completion_date"],
        )
        day = lambda v: v[:10] if v else None  # noqa: E731
        return CustomerSnapshot(
            id=company["id"],
            name=p.get("name") or "",
            tier=TIERS.get(p.get("hs_ideal_customer_profile") or ""),
            industry=p.get("industry"),
            region=p.get("state"),
            owner_user_id=p.get("hubspot_owner_id"),
            notes=p.get("description") or "",
            contacts=tuple(
                Contact(
                    f"{c['properties'].get('lastname') or ''}{c['properties'].get('firstname') or ''}",
                    c["properties"].get("jobtitle") or "",
                    "DECISION_MAKER" in (c["properties"].get("hs_buying_role") or "").split(";"),
                )
                for c in contacts
            ),
            opportunities=tuple(
                Opportunity(
                    id=d["id"],
                    name=d["properties"].get("dealname") or "",
                    stage=self._from_hs.get(
                        d["properties"].get("dealstage") or "", d["properties"].get("dealstage") or ""
                    ),
                    amount=float(d["properties"]["amount"]) if d["properties"].get("amount") else None,
                    currency=d["properties"].get("deal_currency_code") or "CNY",
                    created=day(d["properties"].get("createdate")),
                    expected_close=day(d["properties"].get("closedate")),
                )
                for d in deals
            ),
            visits=tuple(
                Visit(
                    day(m["properties"].get("hs_timestamp")) or "",
                    m["properties"].get("hs_activity_type") or "",
                    m["properties"].get("hubspot_owner_id"),
                    notes=m["properties"].get("hs_meeting_body") or "",
                    memo_id=m["properties"].get("copilot_memo_id"),
                )
                for m in meetings
            ),
            tasks=tuple(
                Task(
                    k["id"],
                    k["properties"].get("hs_task_subject") or "",
                    day(k["properties"].get("hs_createdate") or k["createdAt"]),
                    day(k["properties"].get("hs_timestamp")),
                    "done" if k["properties"].get("hs_task_status") == "COMPLETED" else "open",
                    day(k["properties"].get("hs_task_completion_date")),
                )
                for k in tasks
            ),
        )

    # -- writes -----------------------------------------------------------------------------
    def _require_company(self, company_id: str) -> None:
        if self._get("companies", company_id, ["name"]) is None:
            raise CRMRejected(f"客户 {company_id} 在 HubSpot 中不存在", crm=self.name, status=404)

    def _upsert_engagement(
        self, object_type: str, company_id: str, key: str, props: dict[str, Any], kind: str
    ) -> CRMRef:
        self._require_company(company_id)
        properties = {k: str(v) for k, v in props.items() if v not in (None, "")}
        body = {
            "inputs": [
                {"idProperty": KEY_PROPERTY, "id": key, "properties": {**properties, KEY_PROPERTY: key}}
            ]
        }
        record = self._call("POST", f"/crm/v3/objects/{object_type}/batch/upsert", json=body).json()[
            "results"
        ][0]
        path = f"/crm/v4/objects/{object_type}/{record['id']}/associations/default/companies/{company_id}"
        self._call("PUT", path)
        return CRMRef(self.name, kind, record["id"])

    def create_task(self, task: TaskDraft, *, idempotency_key: str) -> CRMRef:
        props = {
            "hs_timestamp": _midnight_utc(task.due),
            "hs_task_subject": task.title,
            "hs_task_body": task.notes,
            "hs_task_status": "NOT_STARTED",
        }
        return self._upsert_engagement("tasks", task.customer_id, idempotency_key, props, "task")

    def log_visit(self, visit: VisitDraft, *, idempotency_key: str) -> CRMRef:
        body = visit.notes
        if visit.contacts:
            body = f"{body}\n联系人：{'、'.join(visit.contacts)}".strip()
        props = {
            "hs_timestamp": _midnight_utc(visit.date),
            "hs_meeting_title": visit.type or "拜访",
            "hs_activity_type": visit.type,
            "hs_meeting_body": body,
            "hs_meeting_outcome": "COMPLETED",
            "copilot_memo_id": visit.memo_id,
        }
        return self._upsert_engagement("meetings", visit.customer_id, idempotency_key, props, "visit")

    def add_note(self, note: NoteDraft, *, idempotency_key: str) -> CRMRef:
        props = {"hs_timestamp": _midnight_utc(None), "hs_note_body": note.body}
        return self._upsert_engagement("notes", note.customer_id, idempotency_key, props, "note")

    def update_stage(self, change: StageUpdate, *, idempotency_key: str) -> CRMRef:
        """Setting ``dealstage`` is idempotent by nature: applying it twice leaves the same stage."""
        deal = self._get(DEALS, change.opportunity_id, ["dealstage"], ["companies"])
        companies = [
            a["id"] for a in ((deal or {}).get("associations") or {}).get("companies", {}).get("results", [])
        ]
        if deal is None or change.customer_id not in companies:
            raise CRMRejected(f"商机 {change.opportunity_id} 不存在或不属于该客户", crm=self.name, status=404)
        stage = self._to_hs.get(change.stage, change.stage)
        self._call(
            "PATCH",
            f"/crm/v3/objects/{DEALS}/{change.opportunity_id}",
            json={"properties": {"dealstage": stage}},
        )
        return CRMRef(self.name, "opportunity", change.opportunity_id)
