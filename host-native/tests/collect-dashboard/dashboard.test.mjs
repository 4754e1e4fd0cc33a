// The Telemetry Dashboard in real Chromium: it draws charts, the numbers on the page equal
// /api/v1/stats, and report-supplied strings (a frequency-plan id `<script>…`) show as text.
//
// Needs a running collector seeded with reports: COLLECTOR_URL=http://127.0.0.1:PORT/
// (scripts/test.d/60-dashboard.sh starts one). Writes ${ARTIFACTS_DIR:-/tmp/ttn-artifacts}/dashboard.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.COLLECTOR_URL;
const artifacts = process.env.ARTIFACTS_DIR || '/tmp/ttn-artifacts';
const XSS_PLAN = '<script>alert(1)</script>';

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

test('daily totals are line charts over the same days', async () => {
  for (const key of ['deployments', 'gateways', 'end_devices', 'active_last_day', 'applications', 'users']) {
    const pts = await page.$$eval(`svg[data-series="${key}"] circle`, cs => cs.map(c => [c.dataset.date, Number(c.dataset.value)]));
    assert.deepEqual(pts, stats.daily.map(d => [d.date, d[key]]), key);
    const line = await page.$eval(`svg[data-series="${key}"] polyline`, p => p.getAttribute('points'));
    assert.equal(line.split(' ').length, stats.daily.length);
  }
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
});
