// The Telemetry Dashboard in real Chromium: it draws charts, the numbers on the page equal
// /api/v1/stats, and report-supplied strings (a frequency-plan id `<script>…`) show as text.
// Issue 13: today's partial day is drawn apart (dashed, hollow), each entity total is readable
// on its own, and every chart has a text alternative with the same numbers as the stats.
//
// Needs a running collector seeded with reports: COLLECTOR_URL=http://127.0.0.1:PORT/
// (scripts/test.d/60-dashboard.sh starts one). Writes ${ARTIFACTS_DIR:-/tmp/ttn-artifacts}/dashboard.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.COLLECTOR_URL;
assert.ok(base, 'COLLECTOR_URL must name the collector under test (run scripts/test.d/60-dashboard.sh)');
const artifacts = process.env.ARTIFACTS_DIR || '/tmp/ttn-artifacts';
const XSS_PLAN = '<script>alert(1)</script>';
// Issue 14 §4: the seed posts this plan id from k − 1 = 4 deployments (XSS_PLAN from k = 5).
const K = 5;
const RARE_PLAN = 'RARE_PLAN_K_MINUS_1';

let browser, page, stats;
const problems = [];

before(async () => {
  assert.ok(base, 'COLLECTOR_URL must name a running, seeded collector');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('dialog', d => { problems.push(`dialog: ${d.message()}`); d.dismiss(); });
  page.on('pageerror', e => problems.push(`page error: ${e.message}`));
  page.on('console', m => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(base, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
  // The numbers compared below must be the ones the page drew: fetch the stats right after.
  stats = await (await fetch(new URL('api/v1/stats', base))).json();
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, process.env.SCREENSHOT || 'dashboard.png'), fullPage: true });
});

after(async () => { await browser?.close(); });

const num = s => Number(String(s).replace(/,/g, ''));
const at = (obj, path) => path.split('.').reduce((o, k) => o?.[k], obj);

test('the collector was seeded', () => {
  assert.ok(stats.reports_stored > 0);
  assert.ok(stats.deployments.total > 0);
  assert.ok(stats.daily.length > 1, 'several days of history');
});

test('every figure on the page equals /api/v1/stats', async () => {
  const figures = await page.$$eval('[data-stat]', ns => ns.map(n => [n.dataset.stat, n.textContent]));
  assert.ok(figures.length >= 20, `found ${figures.length} figures`);
  for (const [path, text] of figures) {
    const want = at(stats, path);
    assert.equal(typeof want, 'number', `${path} is a number in the stats`);
    assert.equal(num(text), want, path);
  }
  for (const path of ['deployments.last_day', 'deployments.last_week', 'deployments.last_month',
    'entities.gateways', 'entities.end_devices', 'active_end_devices.last_day', 'reports_stored']) {
    assert.ok(figures.some(([p]) => p === path), `${path} is shown`);
  }
});

test('the verified share is shown (issue 14 §2)', async () => {
  const share = await page.locator('#verified-share').textContent();
  const want = Math.round((100 * stats.verified.deployments) / stats.deployments.total);
  assert.equal(share, `${want} %`);
});

test('every spread is drawn as bars with the same entries', async () => {
  for (const list of ['gateways_by_frequency_plan', 'binary_versions', 'operating_systems', 'architectures']) {
    const rows = await page.$$eval(`[data-list="${list}"] g.row`, gs => gs.map(g => ({
      name: g.dataset.name,
      label: g.querySelector('text.label').firstChild.nodeValue,
      count: g.querySelector('text.value').textContent,
      bar: Number(g.querySelector('rect').getAttribute('width')),
    })));
    assert.ok(stats[list].length > 0, `${list} has entries`);
    assert.deepEqual(rows.map(r => [r.name, num(r.count)]), stats[list].map(e => [e.name, e.count]), list);
    for (const r of rows) assert.ok(r.bar > 0, `${list}: ${r.name} has a bar`);
  }
});

const DAILY = ['deployments', 'gateways', 'end_devices', 'active_last_day', 'applications', 'users'];

test('daily totals are line charts over the same days', async () => {
  for (const key of DAILY) {
    const pts = await page.$$eval(`svg[data-series="${key}"] circle`, cs => cs.map(c => [c.dataset.date, Number(c.dataset.value)]));
    assert.deepEqual(pts, stats.daily.map(d => [d.date, d[key]]), key);
  }
});

test("today's partial day is drawn apart from the complete days", async () => {
  const today = stats.generated_at.slice(0, 10);
  // The seed back-dates 40 days and the script posts a few reports now: today is in the stats.
  assert.equal(stats.daily.at(-1).date, today, 'the last day is today');
  const complete = stats.daily.slice(0, -1);
  for (const key of DAILY) {
    const c = await page.$eval(`svg[data-series="${key}"]`, svg => {
      const solid = svg.querySelector('polyline.line');
      const dash = svg.querySelector('line.line.partial');
      const dots = [...svg.querySelectorAll('circle')];
      const last = dots.at(-1);
      const xs = solid.getAttribute('points').split(' ').map(p => Number(p.split(',')[0]));
      return {
        partial: svg.dataset.partial,
        solidPoints: xs.length,
        solidEndX: xs.at(-1),
        dash: dash && { x1: Number(dash.getAttribute('x1')), x2: Number(dash.getAttribute('x2')), dasharray: getComputedStyle(dash).strokeDasharray },
        lastClass: last.getAttribute('class'),
        lastX: Number(last.getAttribute('cx')),
        lastFill: getComputedStyle(last).fill,
        lineStroke: getComputedStyle(solid).stroke,
        otherPartial: dots.slice(0, -1).filter(d => d.classList.contains('partial')).length,
        corner: Number(svg.querySelector('text.value').dataset.latest),
        cornerDate: svg.querySelector('text.value').dataset.date,
        endLabel: [...svg.querySelectorAll('text.label')].at(-1).textContent,
      };
    });
    assert.equal(c.partial, today, `${key}: marked partial`);
    assert.equal(c.solidPoints, complete.length, `${key}: the solid line covers the complete days only`);
    assert.ok(c.dash, `${key}: a dashed segment leads to today`);
    assert.notEqual(c.dash.dasharray, 'none', `${key}: the segment is dashed`);
    assert.equal(c.dash.x1, c.solidEndX, `${key}: the dash starts where the solid line ends`);
    assert.equal(c.dash.x2, c.lastX, `${key}: the dash ends at today's point`);
    assert.ok(c.lastX > c.solidEndX, `${key}: today's point is after the solid line`);
    assert.match(c.lastClass, /\bpartial\b/, `${key}: today's point is marked`);
    assert.notEqual(c.lastFill, c.lineStroke, `${key}: today's point is hollow`);
    assert.equal(c.otherPartial, 0, `${key}: only today is partial`);
    assert.equal(c.corner, complete.at(-1)[key], `${key}: the corner figure is the last complete day`);
    assert.equal(c.cornerDate, complete.at(-1).date);
    assert.equal(c.endLabel, 'today, so far');
  }
});

test('each entity total is readable on its own', async () => {
  const keys = ['gateways', 'end_devices', 'applications', 'users_standard', 'users_admin', 'organizations'];
  const cards = await page.$$eval('#chart-entities li.total', ls => ls.map(l => {
    const r = l.getBoundingClientRect();
    const n = l.querySelector('.n');
    return { key: l.dataset.key, w: r.width, h: r.height, text: n.textContent, size: parseFloat(getComputedStyle(n).fontSize), label: l.querySelector('.l').textContent };
  }));
  assert.deepEqual(cards.map(c => c.key), keys);
  for (const c of cards) {
    assert.equal(num(c.text), stats.entities[c.key], c.key);
    assert.ok(c.w >= 100 && c.h >= 50, `${c.key}: card is ${c.w}×${c.h} px`);
    assert.ok(c.size >= 18, `${c.key}: its number is ${c.size} px`);
    assert.ok(c.label.length > 0);
  }
  assert.ok(stats.entities.end_devices > 10 * stats.entities.gateways, 'the seed has totals of different magnitudes');
});

test('every chart has a text alternative with the numbers of /api/v1/stats', async () => {
  const tables = await page.$$eval('table[data-alt]', ts => Object.fromEntries(ts.map(t => [t.dataset.alt, {
    caption: t.querySelector('caption').textContent,
    rows: [...t.querySelectorAll('tbody tr')].map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent]),
    hidden: (r => r.width <= 1 && r.height <= 1)(t.closest('.sr-only').getBoundingClientRect())
      && getComputedStyle(t.closest('.sr-only')).overflow === 'hidden',
  }])));
  const want = {
    deployments: [['last day', stats.deployments.last_day], ['last week', stats.deployments.last_week],
      ['last month', stats.deployments.last_month], ['ever', stats.deployments.total]],
    cli_installations: [['last day', stats.cli_installations.last_day], ['last week', stats.cli_installations.last_week],
      ['last month', stats.cli_installations.last_month], ['ever', stats.cli_installations.total]],
    active_end_devices: [['last day', stats.active_end_devices.last_day], ['last week', stats.active_end_devices.last_week],
      ['last month', stats.active_end_devices.last_month], ['ever seen', stats.active_end_devices.total]],
  };
  for (const list of ['gateways_by_frequency_plan', 'binary_versions', 'operating_systems', 'architectures']) {
    want[list] = stats[list].map(e => [e.name, e.count]);
  }
  for (const key of DAILY) want[`daily.${key}`] = stats.daily.map(d => [d.date, d[key]]);
  assert.deepEqual(Object.keys(tables).sort(), Object.keys(want).sort(), 'one table per chart');
  for (const [key, rows] of Object.entries(want)) {
    const t = tables[key];
    assert.ok(t.caption.length > 0, `${key}: captioned`);
    assert.deepEqual(t.rows.map(([l, v]) => [l, num(v.replace(/ \(.*\)$/, ''))]), rows, key);
    assert.ok(t.hidden, `${key}: visually hidden (clipped away)`);
  }
  assert.match(tables['daily.deployments'].rows.at(-1)[1], /today, so far/);
  assert.ok(tables.gateways_by_frequency_plan.rows.some(([l]) => l === XSS_PLAN), 'the <script> plan is text in the table');
  // The drawings themselves are hidden from assistive technology; the tables stand for them.
  assert.deepEqual(await page.$$eval('svg', s => s.filter(x => x.getAttribute('aria-hidden') !== 'true').length), 0);
});

test('report-supplied strings are text, never markup', async () => {
  assert.ok(stats.gateways_by_frequency_plan.some(e => e.name === XSS_PLAN), 'the seed posted the <script> plan');
  const label = await page.$$eval('[data-list="gateways_by_frequency_plan"] g.row', (gs, plan) =>
    gs.filter(g => g.dataset.name === plan).map(g => g.querySelector('text.label').firstChild.nodeValue), XSS_PLAN);
  assert.deepEqual(label, [XSS_PLAN]);
  assert.equal(await page.$$eval('script', s => s.length), 1, 'only the dashboard script');
  const visible = await page.evaluate(() => document.body.innerText);
  assert.ok(visible.includes(XSS_PLAN), 'shown as text');
  assert.deepEqual(problems, []);
});

test('the charts are plots', async () => {
  assert.ok(await page.$$eval('svg', s => s.length) >= 13);
  assert.ok(await page.$$eval('svg rect.bar', s => s.length) >= 20);
  assert.ok(await page.$$eval('svg polyline.line', s => s.length) >= 6);
  assert.ok(await page.$$eval('svg line.line.partial', s => s.length) >= 6);
});

test('a value seen from k − 1 deployments is nowhere public; the threshold is stated', async () => {
  assert.equal(stats.k_anonymity, K);
  assert.ok(stats.gateways_by_frequency_plan.some(e => e.name === 'other'), 'the rare plan is folded into other');
  const html = await page.content();
  const visible = await page.evaluate(() => document.body.innerText);
  assert.ok(!html.includes(RARE_PLAN) && !visible.includes(RARE_PLAN), 'not on the page');
  const note = await page.$eval('#k-anonymity', e => e.textContent.replace(/\s+/g, ' '));
  assert.match(note, new RegExp(`fewer than ${K} deployments`));
  for (const path of ['api/v1/stats', 'api/v1/daily.json', 'api/v1/daily.csv']) {
    const r = await fetch(new URL(path, base));
    assert.equal(r.status, 200, path);
    assert.ok(!(await r.text()).includes(RARE_PLAN), `not in ${path}`);
  }
  const daily = await (await fetch(new URL('api/v1/daily.json', base))).json();
  assert.equal(daily.k_anonymity, K);
  assert.deepEqual(daily.days, stats.daily, 'the open data are the daily totals');
  const csv = (await (await fetch(new URL('api/v1/daily.csv', base))).text()).trim().split(/\r?\n/);
  assert.equal(csv[0], daily.columns.join(','));
  assert.equal(csv.length, daily.days.length + 1);
  // The open-data section documents every column.
  const documented = await page.$$eval('#open-data dt code', cs => cs.map(c => c.textContent));
  assert.deepEqual([...documented].sort(), [...daily.columns].sort());
});
