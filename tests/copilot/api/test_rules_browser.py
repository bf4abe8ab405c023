"""The rules page in real headless Chromium: a manager approves a draft on the page (the POST carries the
session's CSRF token), the draft leaves the queue and becomes a rule; the expression form previews and
refuses an invalid expression with the Chinese reason. Skipped without Node/Chromium/playwright-core."""

from __future__ import annotations

from copilot.api.app import create_app
from tests.copilot.api.test_rules_api import rules_services  # noqa: F401 - the fixture
from tests.support.browser import requires_browser, run_node_script
from tests.support.servers import serve_in_thread

pytestmark = requires_browser

SCRIPT = r"""
const { chromium } = require(process.env.PW);
(async () => {
  const base = process.env.BASE, out = { errors: [], csp: [], external: [] };
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on('request', r => { if (!r.url().startsWith(base)) out.external.push(r.url()); });
  page.on('pageerror', e => out.errors.push(String(e)));
  page.on('console', m => { if (m.text().includes('Content Security Policy')) out.csp.push(m.text()); });
  await page.goto(base + '/login?code=' + process.env.LOGIN_CODE);
  await page.goto(base + '/dashboard/rules');
  out.nav = await page.$$eval('nav.links a', as => as.map(a => a.getAttribute('href')));
  const row = 'tr.draft[data-id="' + process.env.DRAFT + '"]';
  out.cite = await page.$eval(row + ' q.cite', e => e.textContent);
  out.preview = await page.$eval(row + ' td.preview', e => e.textContent.trim());
  await Promise.all([page.waitForNavigation(), page.click(row + ' button.approve')]);
  out.after_drafts = await page.$$eval('tr.draft', rs => rs.map(r => r.dataset.id));
  out.rules = await page.$$eval('tr.rule', rs => rs.map(r => r.textContent));
  await page.fill('#rule-form input[name="expression"]', 'opp.amount > 400000');
  await page.click('#preview-btn');
  await page.waitForFunction(() => document.getElementById('rule-msg').textContent);
  out.previewed = await page.$eval('#rule-msg', e => e.textContent);
  await page.fill('#rule-form input[name="expression"]', 'opp.amount >');
  await page.fill('#rule-form input[name="description"]', '测试');
  await page.evaluate(() => { document.getElementById('rule-msg').textContent = ''; });
  await page.click('#rule-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById('rule-msg').textContent);
  out.refused = await page.$eval('#rule-msg', e => e.textContent);
  await browser.close();
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_a_manager_approves_a_draft_on_the_rules_page(rules_services, tmp_path):  # noqa: F811
    drafts = rules_services.rules_admin.draft()
    draft = next(d for d in drafts if "400000" in d["expression"])
    code = rules_services.login_codes.mint("mgr_a")
    with serve_in_thread(create_app(rules_services)) as base:
        out = run_node_script(SCRIPT, tmp_path, BASE=base, LOGIN_CODE=code, DRAFT=draft["id"])
    assert "/dashboard/rules" in out["nav"]
    assert out["cite"] == draft["citation"]["quote"] and "售前" in out["cite"]
    assert out["preview"].startswith("将对 1 个客户触发") and "华星电子" in out["preview"]
    assert draft["id"] not in out["after_drafts"]
    assert any("400000" in r and "mgr_a 批准" in r and "甲组" in r for r in out["rules"])  # the team's rule
    assert out["previewed"].startswith("将对 1 个客户触发") and "华星电子" in out["previewed"]
    assert "条件表达式" in out["refused"]
    assert out["errors"] == [] and out["csp"] == [] and out["external"] == []
    approved = [r for r in rules_services.rules_admin.list() if r["meta"].get("draft_id") == draft["id"]]
    assert approved and approved[0]["meta"]["approved_by"] == "mgr_a" and approved[0]["team_id"] == "t_a"
