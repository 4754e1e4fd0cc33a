// Telemetry Dashboard: fetches /api/v1/stats and draws every chart as inline SVG.
//
// Everything a report supplies (frequency-plan ids, versions, OS names) is inserted with
// textContent or setAttribute, never as markup, so a plan id such as <script> shows as text.
// Each drawn number carries its raw value in a data attribute, which the browser test compares
// with /api/v1/stats.
//
// Text alternatives: every drawn chart is hidden from assistive technology (aria-hidden) and
// followed by a visually hidden table (in a `.sr-only` box, `data-alt` naming the chart) that
// holds the same numbers, so a screen reader reads a table instead of shapes.
//
// Decisions where SPEC is silent:
// - The last day of a daily series is today's partial day when its date is the generated_at
//   date (UTC). The solid line stops at the last complete day; a dashed segment leads to a
//   hollow point labelled "today, so far", and the figure in the chart's corner is the last
//   complete day's, so a partial day never reads as a collapse.
// - Entity totals differ by orders of magnitude (1,215 gateways next to 21,655 end devices),
//   so they are not bars on one axis: each total is its own card with its number, because a
//   log axis is easily misread as proportions.
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

const hidden = svg => { svg.setAttribute('aria-hidden', 'true'); return svg; };

// The text alternative of a chart: a visually hidden table with one row per drawn value.
// rows: [label, value, note?]; `key` names the chart for the test (data-alt).
function altTable(box, key, caption, head, rows) {
  const wrap = document.createElement('div');
  wrap.className = 'sr-only';
  const t = document.createElement('table');
  t.dataset.alt = key;
  const c = document.createElement('caption');
  c.textContent = caption;
  t.appendChild(c);
  const hr = document.createElement('tr');
  for (const h of head) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    hr.appendChild(th);
  }
  const thead = document.createElement('thead');
  thead.appendChild(hr);
  t.appendChild(thead);
  const body = document.createElement('tbody');
  for (const [label, value, note] of rows) {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = label;
    const td = document.createElement('td');
    td.textContent = fmt.format(value) + (note ? ` (${note})` : '');
    td.dataset.value = value;
    tr.append(th, td);
    body.appendChild(tr);
  }
  t.appendChild(body);
  wrap.appendChild(t);
  box.appendChild(wrap);
}

// Horizontal bars: one row per entry, label left, value right.
function hbars(id, entries, what, caption) {
  const box = document.getElementById(id);
  clear(box);
  box.dataset.list = what;
  if (!entries.length) return empty(box, what);
  const row = 26, labelW = 190, valueW = 90, W = 640;
  const max = Math.max(1, ...entries.map(e => e.count));
  const svg = hidden(el('svg', { viewBox: `0 0 ${W} ${entries.length * row + 4}` }));
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
  altTable(box, what, caption, ['Name', 'Count'], entries.map(e => [e.name, e.count]));
}

// Vertical columns for a few named figures; `stat` prefixes each value's data-stat path.
function columns(id, items, stat, caption) {
  const box = document.getElementById(id);
  clear(box);
  const W = 640, H = 220, top = 24, bottom = 36;
  const max = Math.max(1, ...items.map(i => i.value));
  const slot = W / items.length;
  const svg = hidden(el('svg', { viewBox: `0 0 ${W} ${H}` }));
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
  altTable(box, stat, caption, ['Window', 'Count'], items.map(it => [it.label, it.value]));
}

// Totals of very different sizes: one card per total, each readable on its own.
function totals(id, items, stat) {
  const box = document.getElementById(id);
  clear(box);
  const list = document.createElement('ul');
  list.className = 'totals';
  for (const it of items) {
    const li = document.createElement('li');
    li.className = 'total';
    li.dataset.key = it.key;
    const n = document.createElement('span');
    n.className = 'n';
    n.textContent = fmt.format(it.value);
    n.dataset.stat = `${stat}.${it.key}`;
    const l = document.createElement('span');
    l.className = 'l';
    l.textContent = it.label;
    li.append(n, l);
    list.appendChild(li);
  }
  box.appendChild(list);
}

// One small line chart of a daily series. `today` (YYYY-MM-DD) marks a day still in progress:
// the solid line stops at the last complete day, a dashed segment leads to today's hollow
// point, and the corner figure is the last complete day's, so a partial day never reads as a drop.
function line(box, days, key, title, today) {
  const W = 300, H = 150, L = 8, R = 8, T = 26, B = 24;
  const fig = document.createElement('figure');
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  fig.appendChild(cap);
  const svg = hidden(el('svg', { viewBox: `0 0 ${W} ${H}` }));
  svg.dataset.series = key;
  const vals = days.map(d => d[key]);
  const max = Math.max(1, ...vals);
  const x = i => L + (days.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (days.length - 1));
  const y = v => T + (H - T - B) * (1 - v / max);
  const last = days[days.length - 1];
  const partial = last.date === today;
  const full = partial ? days.length - 1 : days.length;
  svg.appendChild(el('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
  const pt = i => [x(i).toFixed(1), y(days[i][key]).toFixed(1)];
  if (full > 0) {
    const pts = days.slice(0, full).map((_, i) => pt(i).join(',')).join(' ');
    svg.appendChild(el('polyline', { points: pts, class: 'line' }));
  }
  if (partial) {
    svg.dataset.partial = last.date;
    if (full > 0) {
      const [x1, y1] = pt(full - 1), [x2, y2] = pt(full);
      svg.appendChild(el('line', { x1, y1, x2, y2, class: 'line partial' }));
    }
  }
  days.forEach((d, i) => {
    const p = partial && i === full;
    const c = el('circle', { cx: x(i).toFixed(1), cy: y(d[key]).toFixed(1), r: p ? 3.5 : days.length > 60 ? 1.5 : 3, class: p ? 'dot partial' : 'dot' });
    c.dataset.date = d.date;
    c.dataset.value = d[key];
    c.appendChild(el('title', {}, `${d.date}${p ? ' (today, so far)' : ''}: ${fmt.format(d[key])}`));
    svg.appendChild(c);
  });
  const shown = full > 0 ? days[full - 1] : last;
  const v = el('text', { x: W - R, y: 16, 'text-anchor': 'end', class: 'value' }, fmt.format(shown[key]));
  v.dataset.latest = shown[key];
  v.dataset.date = shown.date;
  v.appendChild(el('title', {}, shown.date));
  svg.appendChild(v);
  svg.appendChild(el('text', { x: L, y: H - 6, class: 'label' }, days[0].date));
  if (days.length > 1) {
    const end = partial ? 'today, so far' : last.date;
    svg.appendChild(el('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: `label${partial ? ' partial' : ''}` }, end));
  }
  fig.appendChild(svg);
  altTable(fig, `daily.${key}`, `${title} per day (UTC)`, ['Day', title],
    days.map((d, i) => [d.date, d[key], partial && i === full ? 'today, so far' : '']));
  box.appendChild(fig);
}

function render(s) {
  for (const node of document.querySelectorAll('header [data-stat], .kpis [data-stat]')) {
    const v = node.dataset.stat.split('.').reduce((o, k) => (o == null ? undefined : o[k]), s);
    node.textContent = typeof v === 'number' ? fmt.format(v) : '–';
  }
  // The verified share: deployments with a pinned key among all deployments (exact counts).
  const share = document.getElementById('verified-share');
  const all = s.deployments.total, verified = s.verified ? s.verified.deployments : 0;
  share.textContent = all > 0 ? `${Math.round((100 * verified) / all)} %` : '–';
  share.title = `${fmt.format(verified)} of ${fmt.format(all)} deployments`;
  const gen = document.getElementById('generated');
  gen.dateTime = s.generated_at;
  gen.textContent = s.generated_at.replace('T', ' ').replace('Z', ' UTC');

  const windows = (o, stat) => columns(stat === 'deployments' ? 'chart-deployments' : 'chart-cli', [
    { key: 'last_day', label: 'last day', value: o.last_day },
    { key: 'last_week', label: 'last week', value: o.last_week },
    { key: 'last_month', label: 'last month', value: o.last_month },
    { key: 'total', label: 'ever', value: o.total },
  ], stat, stat === 'deployments' ? 'Deployments reporting' : 'CLI installations');
  windows(s.deployments, 'deployments');
  windows(s.cli_installations, 'cli_installations');
  const e = s.entities;
  totals('chart-entities', [
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
  ], 'active_end_devices', 'Active end devices');
  hbars('chart-plans', s.gateways_by_frequency_plan, 'gateways_by_frequency_plan', 'Gateways per frequency plan');
  hbars('chart-versions', s.binary_versions, 'binary_versions', 'Deployments per binary version');
  hbars('chart-os', s.operating_systems, 'operating_systems', 'Deployments per operating system');
  hbars('chart-arch', s.architectures, 'architectures', 'Deployments per architecture');

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
