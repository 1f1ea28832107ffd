/**
 * The playground in a real browser: Debian's Chromium driven by playwright-core,
 * against the built page (npm run build:web) served on loopback by `attn web`'s server.
 * Skips, saying why, when Chromium, playwright-core or the built page is missing.
 * Screenshots go to dist/test-artifacts/ (ATTN_ARTIFACTS overrides). With
 * ATTN_REQUIRE_BROWSER=1 (CI, where Chromium is installed) a missing piece fails instead.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PLAYGROUND_DIR, servePlayground } from '../src/cli/web.js';
import { ARTIFACTS, browserSkip as skip, CHROMIUM, FLAGS, pw } from './browser.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

describe('playground in Chromium', { skip }, () => {
  it('trains with a falling loss chart, generates, shows attention, saves and loads a model, with no console errors', { timeout: 240_000 }, async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const server = await servePlayground(PLAYGROUND_DIR, 0);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
    const problems: string[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
      page.on('console', (m: any) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
      page.on('pageerror', (e: Error) => problems.push(`page: ${e.message}`));
      await page.goto(url);
      await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('parameters'));

      // A smaller model, so a few dozen steps take seconds on a shared CPU.
      await page.selectOption('#n-embd', '32');
      await page.selectOption('#block-size', '32');
      await page.fill('#lr', '0.01');
      await page.click('#reset');
      await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('32 wide'));

      // Train: the chart gets step points and at least three evaluations, and the loss falls.
      await page.click('#start');
      await page.waitForFunction(() => JSON.parse((document.getElementById('loss-chart') as HTMLCanvasElement).dataset.evals ?? '[]').length >= 4, null, { timeout: 180_000 });
      // The page answers while the worker trains.
      const t0 = Date.now();
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
      const frameMs = Date.now() - t0;
      await page.click('#pause');
      const evals = JSON.parse(await page.getAttribute('#loss-chart', 'data-evals')) as Array<[number, number, number]>;
      const points = Number(await page.getAttribute('#loss-chart', 'data-points'));
      assert.ok(points >= 3, `step points on the chart: ${points}`);
      assert.ok(evals.at(-1)![2] < evals[0]![2] - 0.3, `val loss should fall: ${JSON.stringify(evals)}`);
      assert.ok(evals.at(-1)![1] < evals[0]![1] - 0.3, `train loss should fall: ${JSON.stringify(evals)}`);
      assert.ok(frameMs < 1000, `an animation frame took ${frameMs} ms while training`);
      assert.match(await page.textContent('#stat-tps'), /\d/);

      // Generate token by token, with probability bars.
      await page.fill('#prompt', 'The fox ');
      await page.fill('#max-new', '40');
      await page.click('#generate');
      await page.waitForSelector('#output[data-done="true"]', { timeout: 60_000 });
      const out = await page.textContent('#output');
      assert.ok(out.startsWith('The fox ') && out.length === 'The fox '.length + 40, `generated: ${JSON.stringify(out)}`);
      const bars = await page.$$('#bars .bar');
      assert.ok(bars.length >= 2 && bars.length <= 10, `bars: ${bars.length}`);

      // Attention heatmap for layer 1, head 1, and a hover readout.
      await page.click('#show-attention');
      await page.waitForFunction(() => (document.getElementById('heatmap') as HTMLCanvasElement).dataset.tokens === '8');
      await page.selectOption('#layer', '1');
      await page.selectOption('#head', '1');
      const box = await page.locator('#heatmap').boundingBox();
      await page.mouse.move(box.x + 34 + 5, box.y + 34 + 36 * 3 + 5); // key 0, query 3 (cells are 36 px for 8 tokens)
      const tip = await page.textContent('#tooltip');
      assert.match(tip, /query 3 .*→ key 0 .*\n(weight 0\.\d+|weight 1\.0+)/);
      await page.mouse.move(box.x + 34 + 36 * 6 + 5, box.y + 34 + 5); // key 6 from query 0: the future
      assert.match(await page.textContent('#tooltip'), /masked/);
      await page.mouse.move(box.x + 34 + 36 * 2 + 5, box.y + 34 + 36 * 5 + 5); // a readout in the screenshot
      await page.screenshot({ path: join(ARTIFACTS, 'playground-1280x800.png'), fullPage: true });

      // Save the model (three downloads in the CLI's format), then load it back by file picker.
      const downloads: any[] = [];
      page.on('download', (d: any) => downloads.push(d));
      await page.click('#download');
      await page.waitForFunction(() => true);
      for (let i = 0; i < 50 && downloads.length < 3; i++) await page.waitForTimeout(100);
      assert.deepEqual(downloads.map((d) => d.suggestedFilename()).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
      const paths: string[] = [];
      for (const d of downloads) {
        const p = join(ARTIFACTS, d.suggestedFilename());
        await d.saveAs(p);
        paths.push(p);
      }
      const config = JSON.parse(readFileSync(join(ARTIFACTS, 'config.json'), 'utf8'));
      assert.equal(config.format, 'attn');
      assert.equal(config.n_embd, 32);
      await page.selectOption('#n-embd', '64'); // a different model, so loading visibly replaces it
      await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('64 wide'));
      await page.setInputFiles('#file-input', paths);
      await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('32 wide'));
      assert.equal(await page.inputValue('#n-embd'), '32', 'the size controls follow the loaded model');

      // A phone-sized viewport: one column, nothing wider than the screen.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForTimeout(200);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `horizontal overflow of ${overflow}px on a phone`);
      await page.screenshot({ path: join(ARTIFACTS, 'playground-390x844.png'), fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      server.close();
    }
  });
});
