"""The web chat in real headless Chromium: a rep logs in, asks about a customer, sees an answer with
citations and suggestions, confirms one (it reaches the CRM once) and rates a cited talk track."""

from __future__ import annotations

from sqlalchemy import select

from copilot.api.app import create_app
from tests.support.browser import requires_browser, run_node_script
from tests.support.servers import serve_in_thread

pytestmark = requires_browser

SCRIPT = r"""
const { chromium } = require(process.env.PW);
(async () => {
  const base = process.env.BASE, out = { errors: [], external: [] };
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('pageerror', e => out.errors.push(String(e)));
  page.on('request', r => { if (!r.url().startsWith(base)) out.external.push(r.url()); });
  await page.goto(base + '/login?token=' + process.env.TOKEN);
  await page.selectOption('#customer', 'c_a1');
  await page.fill('#message', '客户嫌贵，下一步怎么跟？');
  await page.press('#message', 'Enter');
  await page.waitForSelector('.msg.suggestion', { timeout: 60000 });
  out.answer_cites = await page.$$eval('.msg.bot .cites li strong', els => els.map(e => e.textContent));
  out.suggestions = await page.$$eval('.msg.suggestion > strong', els => els.map(e => e.textContent));
  const confirm = page.locator('.msg.suggestion button', { hasText: '采纳并写入 CRM' }).first();
  await confirm.click();
  await page.waitForFunction(() => [...document.querySelectorAll('.actions .muted')].some(e => e.textContent));
  out.status = await page.$$eval('.actions .muted', els => els.map(e => e.textContent).filter(Boolean));
  await page.$$eval('details.sources', ds => ds.forEach(d => { d.open = true; }));  // sources fold away
  await page.locator('.rate button', { hasText: '有效' }).first().click();
  await page.waitForFunction(() => [...document.querySelectorAll('.rate')].some(e => e.textContent.startsWith('已评价')));
  await page.screenshot({ path: process.env.SHOT, fullPage: true });
  await browser.close();
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_rep_confirms_a_suggestion_and_rates_a_talk_track_in_the_browser(kb_services, tmp_path):
    from connectors.crm import local_schema as crm_t
    from copilot.storage.tables import talk_track_ratings

    token = kb_services.users.issue_token("rep_a")
    with serve_in_thread(create_app(kb_services)) as base:
        out = run_node_script(SCRIPT, tmp_path, BASE=base, TOKEN=token, SHOT=str(tmp_path / "chat.png"))

    assert out["errors"] == [] and out["external"] == []
    assert any(label.startswith("依据《价格异议话术》") for label in out["answer_cites"])
    assert out["suggestions"] and all(s.startswith("建议：") for s in out["suggestions"])
    assert out["status"] == ["已确认，已提交 CRM"]
    with kb_services.engine.connect() as conn:
        tasks = conn.execute(select(crm_t.tasks).where(crm_t.tasks.c.customer_id == "c_a1")).all()
        ratings = conn.execute(select(talk_track_ratings)).mappings().all()
    assert len(tasks) == 2  # the imported task plus exactly one from the confirmed suggestion
    assert [(r["user_id"], r["rating"]) for r in ratings] == [("rep_a", "effective")]  # stored as a code
