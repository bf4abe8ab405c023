"""Load the demo company on first start (`copilot run`) and hand out demo logins."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

from copilot.container import Container
from copilot.demo.dates import DEMO_TODAY, shift_dates
from copilot.features.crm_import import CRMImporter

DEMO_DIR = Path(__file__).parent
DEMO_LOGINS = (("u_rep_li", "演示销售"), ("u_mgr_chen", "演示经理"))


def seed_if_empty(
    services: Container, *, progress: Callable[[str], None] = lambda _m: None, today: date | None = None
) -> list[dict]:
    """Import the demo CRM and knowledge base when the database has no users; return demo logins.

    ``today``: move the demo's dates so that its "today" (2026-11-20) is this day (`copilot run` passes
    the real today); None keeps the dates as written (evals, benches and tests use 2026-11-20)."""
    tokens_file = services.settings.home / "demo_logins.json"
    if services.users.count() == 0:
        progress("首次启动：导入演示 CRM 数据…")
        data = json.loads((DEMO_DIR / "crm.json").read_text(encoding="utf-8"))
        if today is not None and today != DEMO_TODAY:
            data = shift_dates(data, today=today)
            progress(f"  演示数据的日期已按今天（{today}）平移 {(today - DEMO_TODAY).days} 天")
        CRMImporter(services.engine, services.local_crm, services.users).import_data(data)
        progress("首次启动：导入演示知识库（首次需构建向量，约 1 分钟）…")
        report = services.kb.ingest([DEMO_DIR / "kb"])
        data = report.to_json() if hasattr(report, "to_json") else report
        progress(f"  知识库：新增 {data['added']} 篇，失败 {len(data['failed'])} 篇")
        from copilot.features.adoption.demo import seed_demo_adoption

        seed_demo_adoption(services.engine, services.crm)  # a filled managers' dashboard for the tour
        logins = [
            {"user_id": uid, "label": label, "token": services.users.issue_token(uid, label="demo")}
            for uid, label in DEMO_LOGINS
            if services.users.get(uid)
        ]
        tokens_file.write_text(json.dumps(logins, ensure_ascii=False, indent=2), encoding="utf-8")
        tokens_file.chmod(0o600)
    if tokens_file.exists():
        return json.loads(tokens_file.read_text(encoding="utf-8"))
    return []
