// A loopback stand-in for the agent's admin listener, until the real one exists: it serves the
// Console page at /console/telemetry (this directory: index.html, src/, pkg/) and
// GET /api/v1/telemetry/inputs in the shape of web-preview/README.md.
//
// The inputs are a fixture file, embedded verbatim (u64 counts stay exact) and as a string
// (`inputs_json`, what the widget reads), and the "agent's"
// SHA-256 comes from the NATIVE core (`native-report sha256 FILE`), so the widget's ✓ compares
// two real implementations. Tests change `state` to tamper with the digest or turn telemetry off.
//
//   node test/fixture-server.mjs NATIVE_REPORT_BIN INPUTS.json [PORT]   (manual use)
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
};

/** The native core's SHA-256 of the report built from `inputsFile`. */
export function nativeSha256(nativeBin, inputsFile) {
  return execFileSync(nativeBin, ['sha256', inputsFile], { encoding: 'utf8' }).trim();
}

/**
 * Starts the fixture on a free loopback port.
 * @returns {Promise<{url: string, state: object, close: () => Promise<void>}>}
 */
export async function startFixture({ nativeBin, inputsFile, port = 0 }) {
  const inputsText = (await readFile(inputsFile, 'utf8')).trim();
  const sha256 = nativeSha256(nativeBin, inputsFile);
  const state = {
    enabled: true,
    off_reason: null,
    tamper: false,
    withInputs: true,
    last_send: { time: '2026-11-20T03:00:00Z', status: '202 Accepted' },
    next_due: '2026-11-21T03:00:00Z',
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://fixture');
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (url.pathname === '/api/v1/telemetry/inputs') {
      const digest = state.tamper ? sha256.replace(/^./, (c) => (c === '0' ? '1' : '0')) : sha256;
      // Built by hand so that the inputs text is embedded byte for byte.
      const body = `{"inputs":${state.withInputs ? inputsText : 'null'},`
        + `"inputs_json":${state.withInputs ? JSON.stringify(inputsText) : 'null'},`
        + `"sha256":${state.withInputs ? JSON.stringify(digest) : 'null'},`
        + `"enabled":${state.enabled},"off_reason":${JSON.stringify(state.off_reason)},`
        + `"target":"https://telemetry.thethingsstack.io/collect","interval":"24h",`
        + `"last_send":${JSON.stringify(state.last_send)},"next_due":${JSON.stringify(state.enabled ? state.next_due : null)}}`;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(body);
      return;
    }
    if (url.pathname === '/console/telemetry') {
      res.writeHead(301, { Location: '/console/telemetry/' }).end();
      return;
    }
    if (url.pathname.startsWith('/console/telemetry/')) {
      let rel = url.pathname.slice('/console/telemetry/'.length) || 'index.html';
      rel = normalize(rel);
      if (rel.startsWith('..') || !/^(index\.html|src\/|pkg\/)/.test(rel)) {
        res.writeHead(404).end('not found');
        return;
      }
      try {
        const data = await readFile(join(ROOT, rel));
        res.writeHead(200, { 'Content-Type': TYPES[extname(rel)] || 'application/octet-stream' }).end(data);
      } catch {
        res.writeHead(404).end('not found');
      }
      return;
    }
    res.writeHead(404).end('not found');
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [nativeBin, inputsFile, port] = process.argv.slice(2);
  if (!nativeBin || !inputsFile) {
    console.error('usage: node test/fixture-server.mjs NATIVE_REPORT_BIN INPUTS.json [PORT]');
    process.exit(2);
  }
  const f = await startFixture({ nativeBin, inputsFile, port: Number(port || 0) });
  console.log(`${f.url}/console/telemetry/`);
}
