// Times report building in Chromium: loads the Console page's wasm package from the fixture
// server and calls buildReport on one inputs file, 7 rounds of N. Prints JSON: fastest and
// median round, ns per report.
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
    // 7 rounds; the fastest is the figure to compare (noise on a shared machine only adds).
    const rounds = [];
    let bytes = 0;
    for (let r = 0; r < 7; r++) {
      const start = performance.now();
      for (let i = 0; i < n; i++) bytes = wasm.buildReport(inputs).length;
      rounds.push(Math.round(((performance.now() - start) * 1e6) / n));
    }
    rounds.sort((a, b) => a - b);
    return { min_ns: rounds[0], median_ns: rounds[3], bytes };
  }, { inputs: readFileSync(inputsFile, 'utf8'), n: Number(n) });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  await fixture.close();
}
