// Browser tests of <ttn-telemetry-preview> in real Chromium (Debian's), driven by
// playwright-core, against the loopback fixture agent (test/fixture-server.mjs) whose digest
// comes from the native core. They cover what the real agent (test/agent.test.mjs) cannot be
// made to serve: u64 maxima and `<&>`/U+2028 in the inputs, a tampered digest (✗), a last send,
// an unreachable agent.
//
// Needs: NATIVE_REPORT (the `native-report` binary of the tests crate), the wasm package in
// web-preview/pkg, and /usr/bin/chromium (or CHROMIUM). scripts/test.d/50-wasm.sh provides all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startFixture } from './fixture-server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const INPUTS = join(HERE, 'fixtures', 'inputs.json');
const NATIVE = process.env.NATIVE_REPORT;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS_DIR || '/tmp/ttn-artifacts';

assert.ok(NATIVE && existsSync(NATIVE), 'NATIVE_REPORT must name the native-report binary (run scripts/test.d/50-wasm.sh)');
assert.ok(existsSync(resolve(HERE, '../pkg/ttn_telemetry_wasm_bg.wasm')), 'web-preview/pkg is missing: run scripts/test.d/50-wasm.sh');
assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);

const native = (...args) => execFileSync(NATIVE, args);

let browser;
let fixture;

before(async () => {
  fixture = await startFixture({ nativeBin: NATIVE, inputsFile: INPUTS });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await fixture?.close();
});

/** Opens the Console page with a fresh fixture state and waits for the widget to settle. */
async function open(state = {}) {
  Object.assign(fixture.state, {
    enabled: true, off_reason: null, tamper: false, withInputs: true,
  }, state);
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${fixture.url}/console/telemetry/`);
  const widget = page.locator('ttn-telemetry-preview');
  await page.locator('ttn-telemetry-preview:is([data-state=ready], [data-state=error])').waitFor();
  assert.equal(await widget.getAttribute('data-state'), 'ready',
    `widget error: ${await page.locator('#error').textContent()}`);
  assert.deepEqual(errors, []);
  return page;
}

test('the wire bytes shown are the native core bytes, with size and SHA-256', async () => {
  const page = await open();
  const expected = native('build', INPUTS);
  const shown = await page.locator('#wire').textContent();
  assert.equal(Buffer.from(shown, 'utf8').compare(expected), 0, `shown:\n${shown}\nnative:\n${expected}`);
  // u64 counts past 2^53 survive the trip through the browser exactly.
  assert.match(shown, /"total":18446744073709551615/);
  assert.match(shown, /"EU_863_870_TTN":9007199254740993/);
  assert.match(shown, /US_902_928_FSB_2\\u003c\\u0026\\u003e\\u2028/);
  assert.equal(await page.locator('#size').textContent(), `${expected.length} bytes`);
  const sha = native('sha256', INPUTS).toString().trim();
  assert.equal(await page.locator('#sha256').textContent(), sha);
  // The table is the native core's field view: one row per field, its exact wire text, and
  // its meaning, shared by the rows of one map.
  const view = JSON.parse(native('view', INPUTS).toString());
  const table = await page.locator('#fields tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    path: tr.querySelector('th').textContent,
    text: tr.querySelector('td.value').textContent,
    meaning: tr.querySelector('td:not(.value)')?.textContent ?? null,
    span: tr.querySelector('td:not(.value)')?.rowSpan ?? 0,
  })));
  assert.deepEqual(table.map((r) => [r.path, r.text]), view.fields.map((f) => [f.path, f.text]));
  const row = table.find((r) => r.path === 'entities_count.end_devices.total');
  assert.deepEqual([row.text, row.meaning], ['18446744073709551615', view.fields.find((f) => f.path === row.path).meaning]);
  const plans = table.filter((r) => r.path.startsWith('entities_count.gateways.gateways_by_frequency_plan_id.'));
  assert.deepEqual(plans.map((r) => [r.path.split('.').at(-1), r.text, r.span]),
    [['AS_923', '2', 3], ['EU_863_870_TTN', '9007199254740993', 0], ['US_902_928_FSB_2<&>\u2028', '1', 0]]);
  assert.match(plans[0].meaning, /^Gateways per frequency plan/);
  await page.close();
});

test('the digest mark is ✓ when the agent agrees and ✗ when its digest differs', async () => {
  let page = await open();
  const mark = () => page.locator('#digest-mark').textContent();
  assert.match(await mark(), /^✓ Matches/);
  assert.equal(await page.locator('#agent-sha256').textContent(), await page.locator('#sha256').textContent());
  await page.close();

  page = await open({ tamper: true });
  assert.match(await mark(), /^✗ Does not match/);
  assert.notEqual(await page.locator('#agent-sha256').textContent(), await page.locator('#sha256').textContent());
  await page.close();
});

test('editing the UID elements recomputes the UID the native core gives', async () => {
  const page = await open();
  const uid = page.locator('#uid');
  const compare = page.locator('#uid-compare');
  // Unedited: the configured elements give the report's UID.
  const configured = JSON.parse(readFileSync(INPUTS, 'utf8')).uid_elements;
  assert.equal(await uid.textContent(), native('uid', ...configured).toString().trim());
  assert.match(await compare.textContent(), /Same as the UID in the report/);

  // Edit with the keyboard only: focus the first field, replace its text, remove the rest.
  const first = page.getByLabel('UID element 1', { exact: true });
  await first.focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('https://console.example.com/api/v3 <&>');
  for (let i = configured.length; i >= 2; i--) {
    await page.getByRole('button', { name: `Remove UID element ${i}` }).focus();
    await page.keyboard.press('Enter');
  }
  await page.getByRole('button', { name: 'Add an element' }).focus();
  await page.keyboard.press('Enter');
  await page.keyboard.type('é\u2028second');
  const edited = ['https://console.example.com/api/v3 <&>', 'é\u2028second'];
  await page.waitForFunction(
    (n) => document.querySelector('ttn-telemetry-preview').elements.length === n, edited.length);
  assert.deepEqual(await page.locator('ttn-telemetry-preview').evaluate((w) => w.elements), edited);
  assert.equal(await uid.textContent(), native('uid', ...edited).toString().trim());
  assert.match(await compare.textContent(), /Differs from the UID in the report/);

  // All-empty elements are refused, as the core refuses them, with words.
  await page.getByLabel('UID element 2', { exact: true }).fill('');
  await page.getByLabel('UID element 1', { exact: true }).fill('');
  assert.match(await uid.textContent(), /^No UID: uid elements are all empty/);
  // The agent was not changed: its report still matches.
  assert.match(await page.locator('#digest-mark').textContent(), /^✓ Matches/);
  await page.close();
});

// The disabled state, the ✓ mark and the UID against the CLI are also tested against the real
// agent (test/agent.test.mjs); here: the last send as the fixture states it, and a screenshot
// of the u64/escaping extremes.
test('the last send is shown, and the page is saved as a screenshot', async () => {
  const page = await open();
  assert.match(await page.locator('#state').textContent(), /^● On: a report is sent to https:\/\/telemetry/);
  assert.match(await page.locator('#last-send').textContent(), /2026-11-20T03:00:00Z: 202 Accepted/);
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, 'preview.png');
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(existsSync(file));
  await page.close();
});

test('the agent being unreachable is reported in words, not a blank widget', async () => {
  const page = await browser.newPage();
  await page.goto(`${fixture.url}/console/telemetry/`);
  await page.locator('ttn-telemetry-preview').evaluate((w) => w.setAttribute('base', 'http://127.0.0.1:9'));
  await page.locator('ttn-telemetry-preview[data-state=error]').waitFor();
  assert.match(await page.locator('#error').textContent(), /^Could not show the telemetry preview: /);
  await page.close();
});
