// <ttn-telemetry-preview>: the Console telemetry preview, as a custom element for any page.
//
//   <script type="module" src="…/src/ttn-telemetry-preview.js"></script>
//   <ttn-telemetry-preview base="https://agent:1886"></ttn-telemetry-preview>
//
// Attributes:
//   base   the agent's admin base URL (default: this page's origin); the widget fetches
//          GET {base}/api/v1/telemetry/inputs (shape: web-preview/README.md)
//   token  optional bearer token for the agent's admin listener
//   wasm   URL of the wasm-bindgen module (default: ../pkg/ttn_telemetry_wasm.js next to this file)
//
// It builds the report in the browser with the wasm core from the agent's plain inputs, shows
// each field with its meaning (the core's field view: path, exact wire text, meaning), the size
// and SHA-256, and the exact wire bytes as selectable text, and marks with ✓/✗ and words whether
// that SHA-256 equals the agent's. Editing the UID elements recomputes the UID live, in the
// browser only: the agent is never changed. All report logic is the core's; this file only
// fetches, calls, and renders. It reads no JSON itself beyond `JSON.parse` of the agent's answer:
// the inputs arrive as the core's exact text in a string (`inputs_json`), so u64 counts never
// pass through JavaScript numbers.
//
// It sets data-state on itself: "loading", "ready", or "error" (tests and pages can wait on it).

const DEFAULT_WASM = new URL('../pkg/ttn_telemetry_wasm.js', import.meta.url).href;

/** Loads and initialises the wasm module once per URL. */
const wasmModules = new Map();
function loadWasm(url) {
  if (!wasmModules.has(url)) {
    wasmModules.set(url, import(url).then(async (m) => {
      await m.default();
      return m;
    }));
  }
  return wasmModules.get(url);
}

const STYLE = `
:host { display: block; font: 15px/1.45 system-ui, sans-serif; color: #1b1f24; background: #fff;
  max-width: 72rem; }
section { border: 1px solid #8c959f; border-radius: 6px; padding: 0.75rem 1rem; margin: 0 0 1rem; }
h2 { font-size: 1.15rem; margin: 0 0 0.5rem; }
h3 { font-size: 1rem; margin: 0.75rem 0 0.25rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; margin: 0; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.85rem; }
pre.wire { white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f8fa; border: 1px solid #8c959f;
  padding: 0.5rem; user-select: text; margin: 0.25rem 0; }
.mark { font-weight: 700; }
.mark.ok { color: #116329; } .mark.bad { color: #a40e26; }
.state.on { color: #116329; } .state.off { color: #6e4b00; }
.error { color: #a40e26; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th[scope=col] { background: #f6f8fa; }
td.value { max-width: 22rem; overflow-wrap: anywhere; }
.elements li { margin: 0.25rem 0; list-style: none; }
.elements ol { padding: 0; margin: 0.25rem 0; }
input[type=text] { width: min(36rem, 70vw); font: inherit; padding: 0.2rem 0.35rem; }
button { font: inherit; padding: 0.2rem 0.6rem; cursor: pointer; }
:focus-visible { outline: 3px solid #0969da; outline-offset: 2px; }
[hidden] { display: none !important; }
`;

const TEMPLATE = `
<style>${STYLE}</style>
<p class="error" role="alert" id="error" hidden></p>
<section aria-labelledby="h-status">
  <h2 id="h-status">Telemetry status</h2>
  <dl>
    <dt>State</dt><dd id="state" class="state">Loading…</dd>
    <dt>Last send</dt><dd id="last-send">—</dd>
    <dt>Next send</dt><dd id="next-due">—</dd>
  </dl>
</section>
<section aria-labelledby="h-report" id="report-section" hidden>
  <h2 id="h-report">The report</h2>
  <p id="report-intro"></p>
  <dl>
    <dt>Size</dt><dd id="size"></dd>
    <dt>SHA-256 (built in this browser)</dt><dd id="sha256" class="mono"></dd>
    <dt>SHA-256 (from the agent)</dt><dd id="agent-sha256" class="mono"></dd>
    <dt>Same report?</dt><dd id="digest-mark" class="mark"></dd>
  </dl>
  <h3 id="h-wire">Exact wire bytes</h3>
  <p>This is the body exactly as sent, byte for byte; select and copy it to compare.</p>
  <pre class="wire" id="wire" tabindex="0" aria-labelledby="h-wire"></pre>
  <button type="button" id="copy">Copy the wire bytes</button> <span id="copy-status" role="status"></span>
  <table id="fields">
    <caption>Every field of the report and why it is collected</caption>
    <thead><tr><th scope="col">Field</th><th scope="col">Value</th><th scope="col">Meaning</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section aria-labelledby="h-uid" class="elements">
  <h2 id="h-uid">Deployment UID</h2>
  <p>The UID is a SHA-512 hash of these elements. Edit them to see the UID they give; this only
  computes in your browser and does not change the agent (set <code>telemetry.uid-elements</code>
  in its configuration for that).</p>
  <ol id="element-list"></ol>
  <button type="button" id="add-element">Add an element</button>
  <dl>
    <dt>UID of these elements</dt><dd id="uid" class="mono" aria-live="polite"></dd>
    <dt>Compared with the report</dt><dd id="uid-compare" aria-live="polite"></dd>
  </dl>
</section>
<p><small>Core version <span id="core-version"></span></small></p>
`;

class TtnTelemetryPreview extends HTMLElement {
  static get observedAttributes() { return ['base', 'token', 'wasm']; }

  constructor() {
    super();
    this.attachShadow({ mode: 'open' }).innerHTML = TEMPLATE;
    this.$ = (id) => this.shadowRoot.getElementById(id);
    this.reportUid = null;
    this.wire = '';
    this.$('add-element').addEventListener('click', () => {
      this.addElementInput('');
      this.shadowRoot.querySelector('#element-list li:last-child input').focus();
      this.updateUid();
    });
    this.$('copy').addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(this.wire);
        this.$('copy-status').textContent = 'Copied.';
      } catch {
        this.$('copy-status').textContent = 'Copying is not allowed here: select the text instead.';
      }
    });
  }

  connectedCallback() { this.refresh(); }

  attributeChangedCallback(_name, old, value) {
    if (this.isConnected && old !== value) this.refresh();
  }

  /** Fetches the agent's inputs again and rebuilds everything. */
  async refresh() {
    const run = (this.run = (this.run || 0) + 1);
    this.dataset.state = 'loading';
    this.$('error').hidden = true;
    try {
      const base = (this.getAttribute('base') || location.origin).replace(/\/+$/, '');
      const headers = { Accept: 'application/json' };
      const token = this.getAttribute('token');
      if (token) headers.Authorization = `Bearer ${token}`;
      const [wasm, res] = await Promise.all([
        loadWasm(this.getAttribute('wasm') || DEFAULT_WASM),
        fetch(`${base}/api/v1/telemetry/inputs`, { headers, cache: 'no-store' }),
      ]);
      if (!res.ok) throw new Error(`the agent answered ${res.status} ${res.statusText}`);
      const text = await res.text();
      if (run !== this.run) return;
      this.render(wasm, text);
      this.dataset.state = 'ready';
    } catch (e) {
      if (run !== this.run) return;
      this.$('error').textContent = `Could not show the telemetry preview: ${e.message}`;
      this.$('error').hidden = false;
      this.dataset.state = 'error';
    }
  }

  render(wasm, text) {
    this.wasm = wasm;
    const body = JSON.parse(text);
    // The core's inputs text, exactly as the agent's core wrote it (null when off).
    const inputsText = typeof body.inputs_json === 'string' ? body.inputs_json : null;
    if (inputsText === null && body.inputs) throw new Error('the agent sent inputs without `inputs_json`');
    this.$('core-version').textContent = wasm.version();

    const state = this.$('state');
    state.className = `state ${body.enabled ? 'on' : 'off'}`;
    // Local-only mode (telemetry.local-only): counted and kept by the agent, never sent; the
    // agent gives the exact sentence in `note`.
    const localOnly = body.enabled && body.local_only === true;
    state.textContent = localOnly
      ? `● On, ${body.note}${body.interval ? ` (a report every ${body.interval})` : ''}.`
      : body.enabled
        ? `● On: a report is sent${body.target ? ` to ${body.target}` : ''}${body.interval ? ` every ${body.interval}` : ''}.`
        : `○ Off${body.off_reason ? ` (${body.off_reason})` : ''}: nothing is sent.`;
    this.$('last-send').textContent = localOnly
      ? (body.last_kept
        ? `Never sent (local only). Last report kept here: ${body.last_kept} (${body.kept_total} kept since the agent started).`
        : 'Never sent (local only). No report kept yet.')
      : body.last_send
        ? `${body.last_send.time}: ${body.last_send.status}` : 'Never sent.';
    this.$('next-due').textContent = body.enabled
      ? (body.next_due || 'Not scheduled yet.') : 'None: nothing is sent while telemetry is off.';

    this.renderReport(wasm, inputsText, body);
    // With telemetry off there are no inputs, but the configured UID elements still are.
    this.renderElements(body.inputs ? body.inputs.uid_elements : body.uid_elements);
  }

  renderReport(wasm, inputsText, body) {
    const section = this.$('report-section');
    this.reportUid = null;
    if (inputsText === null) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    this.$('report-intro').textContent = body.enabled && body.local_only === true
      ? 'Built in this browser by the telemetry core, from the counts the agent gathered for its next report, which it keeps here and never sends.'
      : body.enabled
      ? 'Built in this browser by the telemetry core, from the counts the agent gathered for its next report.'
      : 'Telemetry is off, so this is not sent: it shows what would be sent if it were on.';
    const mark = this.$('digest-mark');
    this.$('agent-sha256').textContent = body.sha256 || 'The agent gave none.';
    let view;
    try {
      view = wasm.buildReportView(inputsText);
    } catch (e) {
      this.wire = '';
      this.$('wire').textContent = '';
      this.$('size').textContent = '—';
      this.$('sha256').textContent = '—';
      mark.className = 'mark bad';
      mark.textContent = `✗ The browser could not build this report: ${e.message}`;
      this.shadowRoot.querySelector('#fields tbody').replaceChildren();
      return;
    }
    const { bytes } = view;
    const sha = wasm.sha256Hex(bytes);
    this.wire = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    this.$('wire').textContent = this.wire;
    this.$('size').textContent = `${bytes.length} bytes`;
    this.$('sha256').textContent = sha;
    if (body.sha256 && body.sha256.toLowerCase() === sha) {
      mark.className = 'mark ok';
      mark.textContent = body.local_only === true
        ? '✓ Matches: the agent keeps exactly these bytes (local only: never sent).'
        : '✓ Matches: the agent sends exactly these bytes.';
    } else {
      mark.className = 'mark bad';
      mark.textContent = body.sha256
        ? '✗ Does not match: the agent\'s report differs from what this browser built.'
        : '✗ Cannot check: the agent gave no SHA-256.';
    }
    this.reportUid = view.uid;
    // One row per field; fields that share a meaning (map entries, array items) share one cell.
    const rows = view.fields.map(({ path, text, doc, meaning }, i, all) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.innerHTML = '<code></code>';
      th.firstChild.textContent = path;
      const value = document.createElement('td');
      value.className = 'value mono';
      value.textContent = text;
      tr.append(th, value);
      if (i === 0 || all[i - 1].doc !== doc) {
        let span = 1;
        while (i + span < all.length && all[i + span].doc === doc) span++;
        const td = document.createElement('td');
        td.rowSpan = span;
        td.textContent = meaning;
        tr.append(td);
      }
      return tr;
    });
    this.shadowRoot.querySelector('#fields tbody').replaceChildren(...rows);
  }

  renderElements(elements) {
    const list = this.$('element-list');
    list.replaceChildren();
    for (const e of elements && elements.length ? elements : ['']) this.addElementInput(e);
    this.updateUid();
  }

  addElementInput(value) {
    const list = this.$('element-list');
    const n = list.children.length + 1;
    const li = document.createElement('li');
    const id = `element-${n}-${Math.random().toString(36).slice(2, 8)}`;
    li.innerHTML = `<label></label> <input type="text" spellcheck="false" autocomplete="off">
      <button type="button"></button>`;
    const [label, input, remove] = [li.querySelector('label'), li.querySelector('input'), li.querySelector('button')];
    label.htmlFor = id;
    input.id = id;
    input.value = value;
    input.addEventListener('input', () => this.updateUid());
    remove.addEventListener('click', () => {
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      this.renumber();
      this.updateUid();
      if (next) next.querySelector('input').focus();
      else this.$('add-element').focus();
    });
    list.append(li);
    this.renumber();
  }

  renumber() {
    [...this.$('element-list').children].forEach((li, i) => {
      li.querySelector('label').textContent = `UID element ${i + 1}`;
      li.querySelector('button').textContent = 'Remove';
      li.querySelector('button').setAttribute('aria-label', `Remove UID element ${i + 1}`);
    });
  }

  /** The UID elements as edited. */
  get elements() {
    return [...this.$('element-list').querySelectorAll('input')].map((i) => i.value);
  }

  updateUid() {
    if (!this.wasm) return;
    const uid = this.$('uid');
    const compare = this.$('uid-compare');
    try {
      const value = this.wasm.computeUid(this.elements);
      uid.textContent = value;
      uid.classList.remove('error');
      compare.textContent = this.reportUid === null ? 'There is no report to compare with.'
        : value === this.reportUid ? '= Same as the UID in the report.'
          : '≠ Differs from the UID in the report (the agent still uses its configured elements).';
    } catch (e) {
      uid.textContent = `No UID: ${e.message}`;
      uid.classList.add('error');
      compare.textContent = '';
    }
  }
}

if (!customElements.get('ttn-telemetry-preview')) {
  customElements.define('ttn-telemetry-preview', TtnTelemetryPreview);
}
