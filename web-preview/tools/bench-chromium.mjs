// Times report building in Chromium: loads the Console page's wasm package from the fixture
// server and calls buildReport N times on one inputs file. Prints JSON with ns per report.
//
//   NATIVE_REPORT=… node tools/bench-chromium.mjs INPUTS.json N
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startFixture } from '../test/fixture-server.mjs';

const [inputsFile, n = '20000'] = process.argv.slice(2);
const fixture = await startFixture({ nativeBin: process.env.NATIVE_REPORT, inputsFile });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(`${fixture.url}/console/telemetry/`);
  const result = await page.evaluate(async ({ inputs, n }) => {
    const wasm = await import('/console/telemetry/pkg/ttn_telemetry_wasm.js');
    await wasm.default();
    for (let i = 0; i < 200; i++) wasm.buildReport(inputs); // warm up
    const start = performance.now();
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += wasm.buildReport(inputs).length;
    const ms = performance.now() - start;
    return { per_report_ns: Math.round((ms * 1e6) / n), bytes: bytes / n };
  }, { inputs: readFileSync(inputsFile, 'utf8'), n: Number(n) });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  await fixture.close();
}
