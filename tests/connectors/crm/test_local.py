"""The embedded local CRM keeps the CRM contract."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select

from connectors.crm import local_schema as t
from connectors.crm.local import LocalCRM
from tests.connectors.crm.contract import CRMContract, CRMEnv

SEED = {
    "id": "c_a1",
    "name": "华星电子",
    "tier": "A",
    "industry": "制造业",
    "region": "上海",
    "owner_user_id": "rep_a",
    "contacts": [{"name": "张总", "role": "总经理", "is_decision_maker": True}],
    "opportunities": [{"id": "o_a1", "name": "产线监测二期", "stage": "商务谈判", "created": "2026-06-01"}],
    "visits": [{"date": "2026-09-25", "type": "上门拜访", "user_id": "rep_a"}],
    "tasks": [{"id": "tk_seed", "title": "寄送样品", "created": "2026-09-01", "status": "open"}],
}


def local_env(engine) -> CRMEnv:
    crm = LocalCRM(engine)
    crm.upsert_customer(SEED)
    tables = {"task": t.tasks, "visit": t.visits, "note": t.notes}

    def count(kind: str, customer_id: str) -> int:
        table = tables[kind]
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(table.c.customer_id == customer_id)).scalar_one()

    return CRMEnv(crm, "c_a1", "o_a1", "rep_a", "rep_b", count)


class TestLocalCRM(CRMContract):
    @pytest.fixture
    def env(self, tmp_path) -> CRMEnv:
        engine = create_engine(f"sqlite:///{tmp_path / 'crm.db'}", connect_args={"timeout": 30})
        t.metadata.create_all(engine)
        yield local_env(engine)
        engine.dispose()

    def test_stage_update_appends_stage_history_once(self, env: CRMEnv):
        from connectors.crm.base import StageUpdate

        change = StageUpdate("c_a1", "o_a1", "赢单", entered="2026-10-09")
        env.crm.update_stage(change, idempotency_key="s-h")
        env.crm.update_stage(change, idempotency_key="s-h")
        (opp,) = env.crm.get_customer("c_a1").opportunities
        assert [h.stage for h in opp.stage_history] == ["赢单"] and opp.stage_entered == "2026-10-09"
