// Browser tests of the Console page served by the REAL agent: `ttn-lw-telemetry run` on the
// demo's seeded SQLite Identity Server database, its admin listener on a free loopback port,
// the page at /console/telemetry with the widget's wasm embedded in the binary. What the widget
// shows is compared with what the same binary's CLI prints for the same configuration
// (`preview`, `uid`).
//
// Needs: TTN_AGENT (the ttn-lw-telemetry binary, built after web-preview/pkg so that it embeds
// it) and /usr/bin/chromium (or CHROMIUM). scripts/test.d/50-wasm.sh provides both.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const AGENT = process.env.TTN_AGENT;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS_DIR || '/tmp/ttn-artifacts';

assert.ok(AGENT && existsSync(AGENT), 'TTN_AGENT must name the ttn-lw-telemetry binary (run scripts/test.d/50-wasm.sh)');
assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);

const dir = mkdtempSync(join(tmpdir(), 'ttn-console-'));
const db = `sqlite:${join(dir, 'demo-state', 'demo', 'is.sqlite')}`;
// The configuration the agent runs with, and that the CLI is asked about. The target is a
// closed loopback port: nothing leaves the machine.
const common = [
  '--is.database-uri', db,
  '--telemetry.target', 'http://127.0.0.1:9/collect',
  '--telemetry.state-dir', join(dir, 'state'),
];
const env = { ...process.env };
delete env.DO_NOT_TRACK;
const cli = (...args) => execFileSync(AGENT, [...common, ...args], { cwd: dir, env });

let browser;
const agents = [];

/** Starts `run` with extra flags; resolves with its admin base URL once it listens. */
function startAgent(extra = []) {
  const child = spawn(AGENT, [...common, '--telemetry.admin.listen', '127.0.0.1:0', ...extra, 'run'], {
    cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'],
  });
  agents.push(child);
  let log = '';
  return new Promise((ok, fail) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s) => {
      log += s;
      const m = log.match(/admin listener at (http:\/\/\S+)/);
      if (m) ok(m[1]);
    });
    child.on('exit', (code) => fail(new Error(`agent exited (${code}) before listening:\n${log}`)));
  });
}

before(async () => {
  // The demo makes the seeded database under its state directory.
  execFileSync(AGENT, ['--telemetry.state-dir', join(dir, 'demo-state'), '--telemetry.enable=false', 'demo', '--once'], { cwd: dir, env });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await Promise.all(agents.map((c) => (c.exitCode !== null ? null
    : new Promise((ok) => { c.on('exit', ok); c.kill('SIGTERM'); }))));
  rmSync(dir, { recursive: true, force: true });
});

async function open(base) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Without the slash: the agent redirects to the page's canonical URL.
  const res = await page.goto(`${base}/console/telemetry`);
  assert.equal(res.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/console/telemetry/');
  const widget = page.locator('ttn-telemetry-preview');
  await page.locator('ttn-telemetry-preview:is([data-state=ready], [data-state=error])').waitFor();
  assert.equal(await widget.getAttribute('data-state'), 'ready',
    `widget error: ${await page.locator('#error').textContent()}`);
  assert.deepEqual(errors, []);
  return page;
}

test('the real agent: bytes equal `preview`, digest ✓, UID edits equal `uid`, screenshot', async () => {
  const base = await startAgent();
  const wasm = await fetch(`${base}/console/telemetry/pkg/ttn_telemetry_wasm_bg.wasm`);
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');

  const page = await open(base);
  const preview = cli('preview');
  assert.equal(preview.at(-1), 0x0a, 'preview ends with a newline');
  const expected = preview.subarray(0, -1);
  const shown = await page.locator('#wire').textContent();
  assert.equal(Buffer.from(shown, 'utf8').compare(expected), 0, `shown:\n${shown}\npreview:\n${expected}`);
  assert.match(shown, /"end_devices":\{"total":[1-9]/, 'the seeded database was counted');
  assert.equal(await page.locator('#size').textContent(), `${expected.length} bytes`);
  assert.match(await page.locator('#digest-mark').textContent(), /^✓ Matches/);
  assert.equal(await page.locator('#agent-sha256').textContent(), await page.locator('#sha256').textContent());
  assert.match(await page.locator('#state').textContent(), /^● On: a report is sent to http:\/\/127\.0\.0\.1:9\/collect every 24h/);

  // Unedited, the widget's UID is the one `uid` prints for the agent's configuration.
  const uid = page.locator('#uid');
  assert.equal(await uid.textContent(), cli('uid').toString().trim());
  assert.match(await page.locator('#uid-compare').textContent(), /Same as the UID in the report/);

  // Edit by keyboard: replace the first element, drop the others, add one.
  const count = await page.locator('ttn-telemetry-preview').evaluate((w) => w.elements.length);
  const first = page.getByLabel('UID element 1', { exact: true });
  await first.focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('https://eu1.cloud.example/api/v3');
  for (let i = count; i >= 2; i--) {
    await page.getByRole('button', { name: `Remove UID element ${i}` }).focus();
    await page.keyboard.press('Enter');
  }
  await page.getByRole('button', { name: 'Add an element' }).focus();
  await page.keyboard.press('Enter');
  await page.keyboard.type('tenant <b>ü</b>');
  const edited = ['https://eu1.cloud.example/api/v3', 'tenant <b>ü</b>'];
  await page.waitForFunction((n) => document.querySelector('ttn-telemetry-preview').elements.length === n, edited.length);
  const flags = edited.flatMap((e) => ['--telemetry.uid-elements', e]);
  assert.equal(await uid.textContent(), cli(...flags, 'uid').toString().trim());
  assert.match(await page.locator('#uid-compare').textContent(), /Differs from the UID in the report/);
  // The agent was not changed: a fresh count still gives the same report and mark.
  assert.match(await page.locator('#digest-mark').textContent(), /^✓ Matches/);

  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, 'console.png');
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(existsSync(file));
  await page.close();
});

test('the real agent with telemetry off: the page says nothing is sent', async () => {
  const base = await startAgent(['--telemetry.enable=false']);
  const body = await (await fetch(`${base}/api/v1/telemetry/inputs`)).json();
  assert.equal(body.enabled, false);
  assert.equal(body.inputs, null);
  const page = await open(base);
  assert.match(await page.locator('#state').textContent(), /^○ Off \(telemetry\.enable is false\): nothing is sent\./);
  assert.match(await page.locator('#next-due').textContent(), /nothing is sent/);
  assert.equal(await page.locator('#report-section').isVisible(), false);
  // Off, nothing is counted, but the configured UID elements are served, so the UID shown is
  // still the one `uid` prints.
  assert.equal(body.uid_elements.length, 5);
  assert.equal(await page.locator('#uid').textContent(), cli('uid').toString().trim());
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'console-off.png'), fullPage: true });
  await page.close();
});

test('the real agent in local-only mode: the page says reports are kept here and never sent', async () => {
  const base = await startAgent(['--telemetry.local-only', '--telemetry.state-dir', join(dir, 'state-local'),
    '--telemetry.entity-count-telemetry.interval', '1s']);
  // Wait for the agent's first kept report (its decision), not for time.
  let body;
  for (let i = 0; i < 200; i++) {
    body = await (await fetch(`${base}/api/v1/telemetry/inputs`)).json();
    if (body.kept_total >= 1) break;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  assert.ok(body.kept_total >= 1, `no report kept: ${JSON.stringify(body)}`);
  assert.equal(body.local_only, true);
  assert.equal(body.note, 'local only: reports are kept here and never sent');
  const page = await open(base);
  assert.equal(await page.locator('#state').textContent(),
    '● On, local only: reports are kept here and never sent (a report every 1s).');
  assert.match(await page.locator('#last-send').textContent(),
    /^Never sent \(local only\)\. Last report kept here: \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+ kept since the agent started\)\.$/);
  assert.match(await page.locator('#digest-mark').textContent(), /^✓ Matches: the agent keeps exactly these bytes/);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'console-local-only.png'), fullPage: true });
  await page.close();
});
