"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core from
Node): the numbers shown match values computed by hand from the seeded log, a drill-down opens the
suggestions behind a number, and a table downloads as CSV. The screenshot is kept as a test artifact
(``$COPILOT_TEST_ARTIFACTS``, default the test's tmp dir).

Skipped when Node, Chromium or playwright-core is missing (``COPILOT_TEST_PLAYWRIGHT_CORE`` points at
the playwright-core package folder; ``COPILOT_TEST_CHROMIUM`` at the browser)."""

from __future__ import annotations

import os
from pathlib import Path

from copilot.api.app import create_app
from tests.support.browser import requires_browser, run_node_script
from tests.support.servers import serve_in_thread

pytestmark = requires_browser

SCRIPT = r"""
const { chromium } = require(process.env.PW);
const fs = require('fs');
(async () => {
  const base = process.env.BASE, out = {};
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
  out.external = []; out.errors = []; out.csp = [];
  page.on('request', r => { if (!r.url().startsWith(base)) out.external.push(r.url()); });
  page.on('pageerror', e => out.errors.push(String(e)));
  page.on('console', m => { if (m.text().includes('Content Security Policy')) out.csp.push(m.text()); });
  await page.goto(base + '/login?code=' + process.env.LOGIN_CODE);  // a one-time login link
  await page.goto(base + '/dashboard');
  out.kpis = Object.fromEntries(await page.$$eval('[data-kpi]', els => els.map(e => [e.dataset.kpi, e.textContent.trim()])));
  out.by_rep = await page.$$eval('[data-table="by_rep"] tbody tr', rows => rows.map(r => [r.dataset.key,
    r.querySelector('[data-col="shown"]').textContent.trim(), r.querySelector('[data-col="adoption_rate"]').textContent.trim()]));
  out.charts = await page.evaluate(() => !!(window.Chart && Chart.getChart('chart-trend')));
  await page.screenshot({ path: process.env.SHOT, fullPage: true });
  await page.click('[data-kpi="dismissed"] a');
  await page.waitForSelector('#drill tbody tr');
  out.drill = await page.$$eval('#drill tbody tr', rows => rows.map(r => r.dataset.id + ' ' + r.textContent));
  await page.selectOption('#drill form.review select', 'wrong');  // a state change: sends the CSRF token
  await page.fill('#drill form.review input[name="note"]', '时机判断有误');
  await page.click('#drill form.review button');
  await page.waitForFunction(() => document.querySelector('#drill form.review span').textContent);
  out.review = await page.$eval('#drill form.review span', e => e.textContent);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#t-by_rep a.csv')]);
  out.csv = fs.readFileSync(await download.path(), 'utf8');
  await browser.close();
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_dashboard_in_headless_chromium_matches_hand_computed_numbers(log_services, tmp_path):
    artifacts = Path(os.environ.get("COPILOT_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "dashboard.png"
    code = log_services.login_codes.mint("mgr_a")
    with serve_in_thread(create_app(log_services)) as base:
        out = run_node_script(SCRIPT, tmp_path, BASE=base, LOGIN_CODE=code, SHOT=str(shot))
    # Team t_a by hand (conftest LOG): sg_1 accepted+applied, sg_2 edited, sg_3 dismissed, sg_4 ignored, sg_5 pending.
    assert {k: out["kpis"][k] for k in ("shown", "accepted", "edited", "dismissed", "ignored", "applied")} == {
        "shown": "5", "accepted": "1", "edited": "1", "dismissed": "1", "ignored": "1", "applied": "1",
    }  # fmt: skip
    assert out["kpis"]["adoption_rate"] == "40.0%"  # (1 + 1) / 5
    assert sorted(out["by_rep"]) == [["rep_a", "3", "66.7%"], ["rep_a2", "2", "0.0%"]]
    assert out["charts"] is True
    assert len(out["drill"]) == 1 and out["drill"][0].startswith("sg_3") and "时机不对" in out["drill"][0]
    rows = out["csv"].lstrip("\ufeff").splitlines()
    assert rows[0].startswith("rep_id,shown,accepted") and len(rows) == 3
    assert out["review"].startswith("已保存")  # the review POST carried the session's CSRF token
    assert out["external"] == [] and out["errors"] == [] and out["csp"] == []  # no inline script or style
    assert shot.stat().st_size > 10_000
