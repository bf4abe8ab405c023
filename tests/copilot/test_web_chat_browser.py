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
  const base = process.env.BASE, out = { errors: [], external: [], csp: [] };
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('pageerror', e => out.errors.push(String(e)));
  page.on('console', m => { if (m.text().includes('Content Security Policy')) out.csp.push(m.text()); });
  page.on('request', r => { if (!r.url().startsWith(base)) out.external.push(r.url()); });
  await page.goto(base + '/login?code=' + process.env.LOGIN_CODE);  // a one-time login link
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

    code = kb_services.login_codes.mint("rep_a")
    with serve_in_thread(create_app(kb_services)) as base:
        out = run_node_script(SCRIPT, tmp_path, BASE=base, LOGIN_CODE=code, SHOT=str(tmp_path / "chat.png"))

    assert out["errors"] == [] and out["external"] == [] and out["csp"] == []
    assert any(label.startswith("依据《价格异议话术》") for label in out["answer_cites"])
    assert out["suggestions"] and all(s.startswith("建议：") for s in out["suggestions"])
    assert out["status"] == ["已确认，已提交 CRM"]
    with kb_services.engine.connect() as conn:
        tasks = conn.execute(select(crm_t.tasks).where(crm_t.tasks.c.customer_id == "c_a1")).all()
        ratings = conn.execute(select(talk_track_ratings)).mappings().all()
    assert len(tasks) == 2  # the imported task plus exactly one from the confirmed suggestion
    assert [(r["user_id"], r["rating"]) for r in ratings] == [("rep_a", "effective")]  # stored as a code


THREE_TURNS = r"""
const { chromium } = require(process.env.PW);
(async () => {
  const base = process.env.BASE, out = { errors: [], answers: [], csp: [], posts: [] };
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('pageerror', e => out.errors.push(String(e)));
  page.on('console', m => { if (m.text().includes('Content Security Policy')) out.csp.push(m.text()); });
  page.on('request', r => { if (r.method() === 'POST' && r.url().includes('/api/chat')) out.posts.push(new URL(r.url()).pathname); });
  await page.goto(base + '/login?code=' + process.env.LOGIN_CODE);  // a one-time login link
  for (const say of ['华兴最近怎么样？', '那他们要是说太贵了呢？', '帮我给他们建个任务：下周三前把三年TCO测算发给张总']) {
    const n = await page.$$eval('.msg.bot', els => els.length);
    await page.fill('#message', say);
    await page.press('#message', 'Enter');
    await page.waitForFunction(n => [...document.querySelectorAll('.msg.bot')].length > n
      && !document.querySelector('.msg.streaming'), n, { timeout: 60000 });
    out.answers.push(await page.$$eval('.msg.bot', els => els.map(e => e.textContent)));
  }
  await page.locator('.msg.actions button', { hasText: '确认写入 CRM' }).last().click();
  await page.waitForFunction(() => document.body.innerText.includes('已写入 CRM'), null, { timeout: 60000 });
  await page.screenshot({ path: process.env.SHOT, fullPage: true });
  await browser.close();
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_three_turns_in_the_web_chat_create_exactly_one_task(kb_services, tmp_path):
    """Short name (a homophone) → follow-up with 他们 → a request, confirmed with the button: one task."""
    from connectors.crm import local_schema as crm_t

    def tasks():
        with kb_services.engine.connect() as conn:
            return conn.execute(select(crm_t.tasks).where(crm_t.tasks.c.customer_id == "c_a1")).all()

    before = len(tasks())
    code = kb_services.login_codes.mint("rep_a")
    with serve_in_thread(create_app(kb_services)) as base:
        out = run_node_script(
            THREE_TURNS, tmp_path, BASE=base, LOGIN_CODE=code, SHOT=str(tmp_path / "turns.png")
        )

    assert out["errors"] == [] and out["csp"] == []
    assert set(out["posts"]) == {"/api/chat/stream"}  # the page streams every turn, 「确认」 included
    assert any("华星电子" in a and "近况" in a for a in out["answers"][0])
    assert any(a.startswith("建议这样回应：") for a in out["answers"][1])
    assert any("回复「确认」写入 CRM" in a for a in out["answers"][2])
    after = tasks()
    assert len(after) == before + 1 and "TCO测算" in after[-1].title
