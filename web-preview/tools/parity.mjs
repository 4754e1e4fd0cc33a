// Browser-build path of the parity test: runs plain inputs through the wasm-bindgen
// `--target web` package, in node, exactly as the Console page loads it.
//
//   node tools/parity.mjs PKG_DIR CASES.jsonl
//
// Each input line is the inputs text as a JSON string; each output line is
// {"hex":"<report bytes>","view":{"uid","fields":[…]}} (`buildReport`, and `buildReportView`
// without its bytes, which must be the same) or {"error":"<the core's message>"}, in order.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [pkgDir, casesFile] = process.argv.slice(2);
if (!pkgDir || !casesFile) {
  console.error('usage: node tools/parity.mjs PKG_DIR CASES.jsonl');
  process.exit(2);
}
const wasm = await import(pathToFileURL(resolve(pkgDir, 'ttn_telemetry_wasm.js')).href);
wasm.initSync({ module: readFileSync(join(pkgDir, 'ttn_telemetry_wasm_bg.wasm')) });

const out = [];
for (const line of readFileSync(casesFile, 'utf8').split('\n')) {
  if (line === '') continue;
  const inputs = JSON.parse(line);
  try {
    const hex = Buffer.from(wasm.buildReport(inputs)).toString('hex');
    const { bytes, uid, fields } = wasm.buildReportView(inputs);
    if (Buffer.from(bytes).toString('hex') !== hex) throw new Error('buildReportView bytes differ from buildReport');
    out.push(JSON.stringify({ hex, view: { uid, fields } }));
  } catch (e) {
    out.push(JSON.stringify({ error: e.message }));
  }
}
process.stdout.write(out.join('\n') + '\n');
