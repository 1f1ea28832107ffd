/**
 * The playground trains on WebGPU: headless Chromium with WebGPU on
 * SwiftShader (Debian's chromium ships it: a Vulkan implementation on the
 * CPU), the built page served by `attn web`'s server. The page must say it
 * runs on webgpu, and eight training steps must run there with a finite,
 * falling loss. Skips like the other browser tests when Chromium or the
 * built page is missing (ATTN_REQUIRE_BROWSER=1 makes that fail); when the
 * browser offers no WebGPU adapter it fails under ATTN_REQUIRE_WEBGPU=1 (CI)
 * and skips otherwise.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { PLAYGROUND_DIR, servePlayground } from '../src/cli/web.js';
import { browserSkip as skip, CHROMIUM, FLAGS, pw } from './browser.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** The browser flags with the GPU process left on and WebGPU offered on SwiftShader's Vulkan. */
export const WEBGPU_FLAGS = [
  ...FLAGS.filter((f) => f !== '--disable-gpu'),
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--use-angle=swiftshader',
];

describe('playground on WebGPU in Chromium', { skip }, () => {
  it('says it runs on webgpu and trains there: finite losses that fall', { timeout: 300_000 }, async (t) => {
    const server = await servePlayground(PLAYGROUND_DIR, 0);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: WEBGPU_FLAGS, headless: true });
    const problems: string[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      page.on('console', (m: any) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
      page.on('pageerror', (e: Error) => problems.push(`page: ${e.message}`));
      await page.goto(url);
      await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('parameters'), null, { timeout: 60_000 });
      const info = (await page.textContent('#model-info')) as string;
      if (!info.includes('on webgpu')) {
        const why = `the page runs on ${info.split(' on ').at(-1)}, not webgpu`;
        if (process.env.ATTN_REQUIRE_WEBGPU === '1') assert.fail(`ATTN_REQUIRE_WEBGPU=1 but ${why}`);
        return t.skip(why);
      }
      // A small model, so steps on a CPU-emulated GPU take little time.
      await page.selectOption('#n-embd', '32');
      await page.selectOption('#block-size', '32');
      await page.fill('#lr', '0.01');
      await page.click('#reset');
      await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('32 wide'));
      assert.match((await page.textContent('#model-info')) as string, /on webgpu/);
      // Steps on SwiftShader are slow (the first compiles every kernel): a few of them, not an evaluation's 25.
      await page.click('#start');
      const stepOf = async () => Number(await page.textContent('#stat-step'));
      await page.waitForFunction(() => Number(document.getElementById('stat-step')!.textContent) >= 1, null, { timeout: 120_000 });
      const first = Number(await page.textContent('#stat-loss'));
      await page.waitForFunction(() => Number(document.getElementById('stat-step')!.textContent) >= 8, null, { timeout: 120_000 });
      await page.click('#pause');
      const last = Number(await page.textContent('#stat-loss'));
      assert.ok(Number.isFinite(first) && Number.isFinite(last), `losses ${first} → ${last}`);
      assert.ok(last < first, `the loss should fall over ${await stepOf()} steps on WebGPU: ${first} → ${last}`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      server.close();
    }
  });
});
