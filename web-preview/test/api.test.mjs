// Exercises every export of the browser package (web-preview/pkg, wasm-bindgen --target web)
// in node, against the native core (`native-report`, NATIVE_REPORT) where it has an answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const PKG = resolve(HERE, '../pkg');
const INPUTS = join(HERE, 'fixtures', 'inputs.json');
const NATIVE = process.env.NATIVE_REPORT;
assert.ok(NATIVE && existsSync(NATIVE), 'NATIVE_REPORT must name the native-report binary (run scripts/test.d/50-wasm.sh)');
assert.ok(existsSync(join(PKG, 'ttn_telemetry_wasm_bg.wasm')), 'web-preview/pkg is missing: run scripts/test.d/50-wasm.sh');

const wasm = await import(pathToFileURL(join(PKG, 'ttn_telemetry_wasm.js')).href);
wasm.initSync({ module: readFileSync(join(PKG, 'ttn_telemetry_wasm_bg.wasm')) });
const native = (...args) => execFileSync(NATIVE, args);

test('buildReport and sha256Hex give the native bytes and digest', () => {
  const bytes = wasm.buildReport(readFileSync(INPUTS, 'utf8'));
  assert.ok(bytes instanceof Uint8Array);
  assert.equal(Buffer.from(bytes).compare(native('build', INPUTS)), 0);
  assert.equal(wasm.sha256Hex(bytes), native('sha256', INPUTS).toString().trim());
  assert.equal(wasm.sha256Hex(new Uint8Array()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

test('buildReportView is the native core\'s field view of the same bytes', () => {
  const view = wasm.buildReportView(readFileSync(INPUTS, 'utf8'));
  assert.deepEqual(Object.keys(view), ['bytes', 'uid', 'fields']);
  assert.equal(Buffer.from(view.bytes).compare(native('build', INPUTS)), 0);
  const want = JSON.parse(native('view', INPUTS).toString());
  assert.equal(view.uid, want.uid);
  assert.deepEqual(view.fields, want.fields);
  // Each span is where the text is in the bytes; u64 counts stay exact text.
  const wire = Buffer.from(view.bytes);
  for (const f of view.fields) assert.equal(wire.subarray(f.start, f.end).toString('utf8'), f.text, f.path);
  const total = view.fields.find((f) => f.path === 'entities_count.end_devices.total');
  assert.equal(total.text, '18446744073709551615');
  const plan = view.fields.find((f) => f.path.endsWith('.US_902_928_FSB_2<&>\u2028'));
  assert.equal(plan.doc, 'entities_count.gateways.gateways_by_frequency_plan_id');
  assert.throws(() => wasm.buildReportView('{}'), (e) => e instanceof Error && /^inputs: /.test(e.message));
});

test('computeUid gives the native UID and the SPEC §3 vector', () => {
  assert.equal(wasm.computeUid(['foo', 'bar']),
    'wBs9NNSlIoSm2v/pcVCrI1j1UuOMFF36AFsiKszEq2r33ghp6MjSyxRci9Wqs5t3JkyLEUaouYHEO5gdyRFh3Q==');
  const elements = ['https://x.example/api/v3', '', 'é\u2028<&>'];
  assert.equal(wasm.computeUid(elements), native('uid', ...elements).toString().trim());
});

test('refusals are Errors carrying the core message', () => {
  assert.throws(() => wasm.computeUid(['', '']), (e) => e instanceof Error && /^uid elements are all empty/.test(e.message));
  assert.throws(() => wasm.buildReport('{"uid_elements":["a"]}'), (e) => e instanceof Error && /^inputs: /.test(e.message));
  assert.throws(() => wasm.buildReport('not json'), Error);
});

test('fields is the core table in wire order, and version is the workspace version', () => {
  const rows = wasm.fields();
  assert.ok(rows.length >= 20);
  assert.equal(rows[0].path, 'uid');
  for (const r of rows) {
    assert.deepEqual(Object.keys(r), ['path', 'meaning']);
    assert.ok(r.meaning.length > 20, r.path);
  }
  assert.ok(rows.some((r) => r.path === 'entities_count.end_devices.activate_end_devices.last_month'));
  const cargo = readFileSync(resolve(HERE, '../../Cargo.toml'), 'utf8');
  assert.equal(wasm.version(), /\nversion = "([^"]+)"/.exec(cargo)[1]);
});
