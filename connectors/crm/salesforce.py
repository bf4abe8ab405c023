"""Salesforce REST API adapter: Account = customer; Contact, Opportunity, Event (visit), Task.

Writes are idempotent through an external-ID field: every Task and Event we create carries
``Copilot_Key__c`` (Text(64), External ID, Unique) and is written with an upsert,
``PATCH /services/data/vXX.X/sobjects/Task/Copilot_Key__c/{key}``: a retry after a timeout where
Salesforce did write updates that record instead of creating a second one. Notes are completed
Tasks marked ``Copilot_Kind__c = 'note'`` (Salesforce's own Note object takes no custom fields, so
it cannot carry the key). A customer snapshot is read in one Composite API call (five queries).
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any
from urllib.parse import quote

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
from connectors.crm.errors import CRMRejected, CRMUnavailable
from connectors.crm.transport import send
from connectors.http import make_client

# Our stages → the org's Opportunity.StageName picklist values (Salesforce's defaults); data, not code.
DEFAULT_STAGE_MAP = {
    "线索": "Prospecting",
    "需求确认": "Needs Analysis",
    "方案报价": "Proposal/Price Quote",
    "商务谈判": "Negotiation/Review",
    "赢单": "Closed Won",
    "输单": "Closed Lost",
}
KEY_FIELD = "Copilot_Key__c"


def external_key(idempotency_key: str) -> str:
    """Our key as a URL-safe external-ID value (keys may hold ':' '/' '.', which break the upsert path)."""
    return "cp" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def _soql(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _describe(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200], None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("message", "")), body[0].get("errorCode")
    return "", None


class SalesforceCRM:
    name = "salesforce"

    def __init__(
        self,
        *,
        instance_url: str,
        access_token: str,
        api_version: str = "v60.0",
        stage_map: dict[str, str] | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = make_client(
            instance_url,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
            transport=transport,
        )
        self._api = f"/services/data/{api_version}"
        self._to_sf = dict(stage_map or DEFAULT_STAGE_MAP)
        self._from_sf = {v: k for k, v in self._to_sf.items()}

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kw) -> httpx.Response:
        return send(self._client, method, self._api + path, crm=self.name, describe=_describe, **kw)

    def _query(self, soql: str) -> list[dict[str, Any]]:
        return self._call("GET", "/query", params={"q": soql}).json()["records"]

    # -- reads ------------------------------------------------------------------------------
    def list_customers(
        self, *, owner_ids: set[str] | None = None, q: str | None = None
    ) -> list[CustomerSummary]:
        where = []
        if owner_ids is not None:
            if not owner_ids:
                return []
            where.append(f"OwnerId IN ({', '.join(_soql(o) for o in sorted(owner_ids))})")
        if q:
            literal = q.replace("\\", "\\\\").replace("'", "\\'").replace("%", "\\%").replace("_", "\\_")
            where.append(f"Name LIKE '%{literal}%'")  # SOQL escapes: the rep's % and _ are literal
        soql = "SELECT Id, Name, Tier__c, Industry, BillingState, OwnerId FROM Account"
        soql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY Id"
        return [
            CustomerSummary(
                r["Id"], r["Name"], r.get("Tier__c"), r.get("Industry"), r.get("BillingState"), r["OwnerId"]
            )
            for r in self._query(soql)
        ]

    def get_customer(self, customer_id: str) -> CustomerSnapshot | None:
        cid = _soql(customer_id)
        queries = {
            "account": f"SELECT Id, Name, Tier__c, Industry, BillingState, OwnerId, Description FROM Account WHERE Id = {cid}",
            "contacts": f"SELECT Name, Title, Decision_Maker__c FROM Contact WHERE AccountId = {cid} ORDER BY CreatedDate",
            "opps": "SELECT Id, Name, StageName, Amount, CreatedDate, LastStageChangeDate, CloseDate "
            f"FROM Opportunity WHERE AccountId = {cid} ORDER BY CreatedDate",
            "events": "SELECT Id, ActivityDate, Type, OwnerId, Description, Copilot_Memo_Id__c "
            f"FROM Event WHERE WhatId = {cid} ORDER BY ActivityDate",
            "tasks": "SELECT Id, Subject, CreatedDate, ActivityDate, Status, CompletedDateTime "
            f"FROM Task WHERE WhatId = {cid} AND Copilot_Kind__c != 'note' ORDER BY CreatedDate",
        }
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": f"{self._api}/query?q={quote(s)}", "referenceId": ref}
                for ref, s in queries.items()
            ],
        }
        parts = {}
        for sub in self._call("POST", "/composite", json=body).json()["compositeResponse"]:
            if sub["httpStatusCode"] >= 400:
                message = _describe(httpx.Response(sub["httpStatusCode"], json=sub["body"]))[0]
                if sub["httpStatusCode"] >= 500:
                    raise CRMUnavailable(message, crm=self.name, status=sub["httpStatusCode"])
                raise CRMRejected(message, crm=self.name, status=sub["httpStatusCode"])
            parts[sub["referenceId"]] = sub["body"]["records"]
        if not parts["account"]:
            return None
        a = parts["account"][0]
        day = lambda v: v[:10] if v else None  # noqa: E731
        return CustomerSnapshot(
            id=a["Id"],
            name=a["Name"],
            tier=a.get("Tier__c"),
            industry=a.get("Industry"),
            region=a.get("BillingState"),
            owner_user_id=a.get("OwnerId"),
            notes=a.get("Description") or "",
            contacts=tuple(
                Contact(c["Name"], c.get("Title") or "", bool(c.get("Decision_Maker__c")))
                for c in parts["contacts"]
            ),
            opportunities=tuple(
                Opportunity(
                    id=o["Id"],
                    name=o["Name"],
                    stage=self._from_sf.get(o["StageName"], o["StageName"]),
                    amount=o.get("Amount"),
                    created=day(o.get("CreatedDate")),
                    stage_entered=day(o.get("LastStageChangeDate")),
                    expected_close=o.get("CloseDate"),
                )
                for o in parts["opps"]
            ),
            visits=tuple(
                Visit(
                    e["ActivityDate"],
                    e.get("Type") or "",
                    e.get("OwnerId"),
                    notes=e.get("Description") or "",
                    memo_id=e.get("Copilot_Memo_Id__c"),
                )
                for e in parts["events"]
            ),
            tasks=tuple(
                Task(
                    k["Id"],
                    k["Subject"],
                    day(k.get("CreatedDate")),
                    k.get("ActivityDate"),
                    "done" if k.get("Status") == "Completed" else "open",
                    day(k.get("CompletedDateTime")),
                )
                for k in parts["tasks"]
            ),
        )

    # -- writes -----------------------------------------------------------------------------
    def _upsert(self, sobject: str, key: str, fields: dict[str, Any], kind: str) -> CRMRef:
        path = f"/sobjects/{sobject}/{KEY_FIELD}/{external_key(key)}"
        for attempt in range(2):
            try:
                body = self._call(
                    "PATCH", path, json={k: v for k, v in fields.items() if v is not None}
                ).json()
                return CRMRef(self.name, kind, body["id"])
            except CRMRejected as exc:
                # Two upserts of one new key raced inside Salesforce: the second one now updates.
                if exc.code != "DUPLICATE_VALUE" or attempt:
                    raise
        raise AssertionError("unreachable")

    def create_task(self, task: TaskDraft, *, idempotency_key: str) -> CRMRef:
        fields = {
            "WhatId": task.customer_id,
            "Subject": task.title,
            "ActivityDate": task.due,
            "Status": "Not Started",
            "Description": task.notes or None,
            "Copilot_Kind__c": "task",
        }
        return self._upsert("Task", idempotency_key, fields, "task")

    def log_visit(self, visit: VisitDraft, *, idempotency_key: str) -> CRMRef:
        notes = visit.notes
        if visit.contacts:
            notes = f"{notes}\n联系人：{'、'.join(visit.contacts)}".strip()
        fields = {
            "WhatId": visit.customer_id,
            "Subject": visit.type or "拜访",
            "Type": visit.type or None,
            "IsAllDayEvent": True,
            "ActivityDate": visit.date,
            "Description": notes or None,
            "Copilot_Memo_Id__c": visit.memo_id,
        }
        return self._upsert("Event", idempotency_key, fields, "visit")

    def add_note(self, note: NoteDraft, *, idempotency_key: str) -> CRMRef:
        fields = {
            "WhatId": note.customer_id,
            "Subject": "备注",
            "Status": "Completed",
            "ActivityDate": date.today().isoformat(),
            "Description": note.body,
            "Copilot_Kind__c": "note",
        }
        return self._upsert("Task", idempotency_key, fields, "note")

    def update_stage(self, change: StageUpdate, *, idempotency_key: str) -> CRMRef:
        """Setting a stage is idempotent by nature: applying it twice leaves the same stage."""
        rows = self._query(f"SELECT Id, AccountId FROM Opportunity WHERE Id = {_soql(change.opportunity_id)}")
        if not rows or rows[0]["AccountId"] != change.customer_id:
            raise CRMRejected(f"商机 {change.opportunity_id} 不存在或不属于该客户", crm=self.name, status=404)
        stage = self._to_sf.get(change.stage, change.stage)
        self._call("PATCH", f"/sobjects/Opportunity/{change.opportunity_id}", json={"StageName": stage})
        return CRMRef(self.name, "opportunity", change.opportunity_id)
