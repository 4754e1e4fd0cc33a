// Telemetry Dashboard: fetches /api/v1/stats and draws every chart as inline SVG.
//
// Everything a report supplies (frequency-plan ids, versions, OS names) is inserted with
// textContent or setAttribute, never as markup, so a plan id such as <script> shows as text.
// Each drawn number carries its raw value in a data attribute, which the browser test compares
// with /api/v1/stats.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const fmt = new Intl.NumberFormat('en-US');

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function empty(box, what) {
  const p = document.createElement('p');
  p.className = 'empty';
  p.textContent = `No ${what} yet.`;
  box.appendChild(p);
}

function shorten(s, n) {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

// Horizontal bars: one row per entry, label left, value right.
function hbars(id, entries, what) {
  const box = document.getElementById(id);
  clear(box);
  box.dataset.list = what;
  if (!entries.length) return empty(box, what);
  const row = 26, labelW = 190, valueW = 90, W = 640;
  const max = Math.max(1, ...entries.map(e => e.count));
  const svg = el('svg', { viewBox: `0 0 ${W} ${entries.length * row + 4}`, role: 'img', 'aria-label': what });
  entries.forEach((e, i) => {
    const g = el('g', { class: 'row', transform: `translate(0 ${i * row + 2})` });
    g.dataset.name = e.name;
    const label = el('text', { x: labelW - 8, y: 17, 'text-anchor': 'end', class: 'label' }, shorten(e.name, 26));
    label.appendChild(el('title', {}, e.name));
    g.appendChild(label);
    const w = Math.max(2, (W - labelW - valueW) * e.count / max);
    g.appendChild(el('rect', { x: labelW, y: 3, width: w, height: row - 8, rx: 3, class: `bar c${i % 6}` }));
    const v = el('text', { x: labelW + w + 6, y: 17, class: 'value' }, fmt.format(e.count));
    v.dataset.count = e.count;
    g.appendChild(v);
    svg.appendChild(g);
  });
  box.appendChild(svg);
}

// Vertical columns for a few named figures; `stat` prefixes each value's data-stat path.
function columns(id, items, stat) {
  const box = document.getElementById(id);
  clear(box);
  const W = 640, H = 220, top = 24, bottom = 36;
  const max = Math.max(1, ...items.map(i => i.value));
  const slot = W / items.length;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': stat });
  svg.appendChild(el('line', { x1: 0, x2: W, y1: H - bottom, y2: H - bottom, class: 'axis' }));
  items.forEach((it, i) => {
    const h = Math.max(1, (H - top - bottom) * it.value / max);
    const x = i * slot + slot * 0.2;
    svg.appendChild(el('rect', { x, y: H - bottom - h, width: slot * 0.6, height: h, rx: 3, class: `bar c${i % 6}` }));
    const v = el('text', { x: x + slot * 0.3, y: H - bottom - h - 6, 'text-anchor': 'middle', class: 'value' }, fmt.format(it.value));
    v.dataset.stat = `${stat}.${it.key}`;
    svg.appendChild(v);
    svg.appendChild(el('text', { x: x + slot * 0.3, y: H - 12, 'text-anchor': 'middle', class: 'label' }, it.label));
  });
  box.appendChild(svg);
}

// One small line chart of a daily series. `today` (YYYY-MM-DD) marks a day still in progress:
// its point is hollow and labelled, so a partial day does not read as a drop.
function line(box, days, key, title, today) {
  const W = 300, H = 150, L = 8, R = 8, T = 26, B = 24;
  const fig = document.createElement('figure');
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  fig.appendChild(cap);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  svg.dataset.series = key;
  const vals = days.map(d => d[key]);
  const max = Math.max(1, ...vals);
  const x = i => L + (days.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (days.length - 1));
  const y = v => T + (H - T - B) * (1 - v / max);
  svg.appendChild(el('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  const pts = days.map((d, i) => `${x(i).toFixed(1)},${y(d[key]).toFixed(1)}`).join(' ');
  svg.appendChild(el('polyline', { points: pts, class: 'line' }));
  days.forEach((d, i) => {
    const partial = d.date === today;
    const c = el('circle', { cx: x(i).toFixed(1), cy: y(d[key]).toFixed(1), r: days.length > 60 ? 1.5 : 3, class: partial ? 'dot partial' : 'dot' });
    c.dataset.date = d.date;
    c.dataset.value = d[key];
    c.appendChild(el('title', {}, `${d.date}${partial ? ' (so far)' : ''}: ${fmt.format(d[key])}`));
    svg.appendChild(c);
  });
  const last = days[days.length - 1];
  const v = el('text', { x: W - R, y: 16, 'text-anchor': 'end', class: 'value' }, fmt.format(last[key]));
  v.dataset.latest = last[key];
  svg.appendChild(v);
  svg.appendChild(el('text', { x: L, y: H - 6, class: 'label' }, days[0].date));
  if (days.length > 1) {
    const end = last.date === today ? 'today, so far' : last.date;
    svg.appendChild(el('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'label' }, end));
  }
  fig.appendChild(svg);
  box.appendChild(fig);
}

function render(s) {
  for (const node of document.querySelectorAll('header [data-stat], .kpis [data-stat]')) {
    const v = node.dataset.stat.split('.').reduce((o, k) => (o == null ? undefined : o[k]), s);
    node.textContent = typeof v === 'number' ? fmt.format(v) : '–';
  }
  const gen = document.getElementById('generated');
  gen.dateTime = s.generated_at;
  gen.textContent = s.generated_at.replace('T', ' ').replace('Z', ' UTC');

  const windows = (o, stat) => columns(stat === 'deployments' ? 'chart-deployments' : 'chart-cli', [
    { key: 'last_day', label: 'last day', value: o.last_day },
    { key: 'last_week', label: 'last week', value: o.last_week },
    { key: 'last_month', label: 'last month', value: o.last_month },
    { key: 'total', label: 'ever', value: o.total },
  ], stat);
  windows(s.deployments, 'deployments');
  windows(s.cli_installations, 'cli_installations');
  const e = s.entities;
  columns('chart-entities', [
    { key: 'gateways', label: 'gateways', value: e.gateways },
    { key: 'end_devices', label: 'end devices', value: e.end_devices },
    { key: 'applications', label: 'applications', value: e.applications },
    { key: 'users_standard', label: 'users', value: e.users_standard },
    { key: 'users_admin', label: 'admins', value: e.users_admin },
    { key: 'organizations', label: 'organizations', value: e.organizations },
  ], 'entities');
  const a = s.active_end_devices;
  columns('chart-active', [
    { key: 'last_day', label: 'last day', value: a.last_day },
    { key: 'last_week', label: 'last week', value: a.last_week },
    { key: 'last_month', label: 'last month', value: a.last_month },
    { key: 'total', label: 'ever seen', value: a.total },
  ], 'active_end_devices');
  hbars('chart-plans', s.gateways_by_frequency_plan, 'gateways_by_frequency_plan');
  hbars('chart-versions', s.binary_versions, 'binary_versions');
  hbars('chart-os', s.operating_systems, 'operating_systems');
  hbars('chart-arch', s.architectures, 'architectures');

  const daily = document.getElementById('chart-daily');
  clear(daily);
  if (!s.daily.length) {
    empty(daily, 'daily totals');
  } else {
    for (const [key, title] of [
      ['deployments', 'Deployments'],
      ['gateways', 'Gateways'],
      ['end_devices', 'End devices'],
      ['active_last_day', 'End devices active in a day'],
      ['applications', 'Applications'],
      ['users', 'Users'],
    ]) line(daily, s.daily, key, title, s.generated_at.slice(0, 10));
  }
  document.body.dataset.ready = 'true';
}

async function load() {
  const err = document.getElementById('error');
  try {
    const resp = await fetch('api/v1/stats', { headers: { accept: 'application/json' } });
    if (!resp.ok) throw new Error(`the collector answered ${resp.status}`);
    render(await resp.json());
    err.hidden = true;
  } catch (e) {
    err.textContent = `Could not load the statistics: ${e.message}`;
    err.hidden = false;
  }
}

load();
setInterval(load, 60000);
