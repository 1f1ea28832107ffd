/**
 * The article's pages (web/article.html + web/pages/) in Chromium: every page
 * of the registry is visited through the navigation, must draw (a canvas or a
 * table, no error) and name its example file, and is saved as a screenshot in
 * dist/test-artifacts/article-<id>.png. Skips like test/web_e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PLAYGROUND_DIR, servePlayground } from '../src/cli/web.js';
import { ARTIFACTS, browserSkip as skip, CHROMIUM, FLAGS, pw } from './browser.js';

// The page ids, in order (web/pages/registry.ts; that module needs a DOM, so the list is repeated here and checked below).
const IDS = ['network', 'training', 'generating', 'embeddings', 'subword', 'self-attention', 'softmax', 'residual', 'layer-norm', 'dropout', 'multi-head', 'positions', 'gpt', 'encoder-decoder', 'captioning'];

/**
 * Click a page's "train" button from inside the page: the handler only
 * schedules the training, which then holds the page's thread for seconds;
 * playwright's page.click waits for the browser to acknowledge the input,
 * which a loaded machine can delay past its timeout.
 */
async function startTraining(page: { $eval(sel: string, f: (b: HTMLButtonElement) => void): Promise<unknown> }, selector: string): Promise<void> {
  await page.$eval(selector, (b: HTMLButtonElement) => b.click());
}

describe('the article\'s pages in Chromium', { skip }, () => {
  it('every section draws its numbers, names its file, and links to the next', { timeout: 240_000 }, async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const server = await servePlayground(PLAYGROUND_DIR, 0);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/article.html`;
    const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
    const problems: string[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      page.on('console', (m: { type(): string; text(): string }) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
      page.on('pageerror', (e: Error) => problems.push(`page: ${e.message}`));
      await page.goto(url);
      const navIds: string[] = await page.$$eval('#sections a', (as: HTMLAnchorElement[]) => as.map((a) => a.getAttribute('href')!.slice(1)));
      assert.deepEqual(navIds, IDS);
      for (const [i, id] of IDS.entries()) {
        if (i > 0) await page.click('#next'); // moving through the sections as a reader does
        await page.waitForFunction((want: string) => document.body.dataset.page === want, id);
        if (id === 'captioning') {
          await startTraining(page, '#train-captioner');
          await page.waitForFunction(() => document.querySelectorAll('canvas.caption-attention').length === 3, undefined, { timeout: 200_000 });
        }
        if (id === 'generating') {
          await startTraining(page, '#train-humpty');
          // The window table appears when training is done (the intro's prose also says "the last 12 characters", so wait for the table itself).
          await page.waitForFunction(() => document.querySelector('#page-body table') !== null && !(document.getElementById('train-humpty') as HTMLButtonElement).disabled, undefined, { timeout: 200_000 });
        }
        const info = await page.evaluate(() => ({
          file: document.getElementById('page-file')!.textContent!,
          canvases: document.querySelectorAll('#page-body canvas').length,
          tables: document.querySelectorAll('#page-body table').length,
          error: document.getElementById('error')!.hidden ? '' : document.getElementById('error')!.textContent,
          text: document.getElementById('page-body')!.textContent!,
        }));
        assert.equal(info.error, '', id);
        assert.match(info.file, /^examples\/\w+\.ts$/, id);
        assert.ok(existsSync(info.file), `${id}: ${info.file} exists`);
        assert.ok(info.canvases + info.tables > 0, `${id} draws something`);
        if (id === 'softmax') {
          // The slider moves the bars: T = 0.5 gives the top score 0.864 (examples/README.md).
          await page.$eval('#temperature', (s: HTMLInputElement) => { s.value = '0.5'; s.dispatchEvent(new Event('input')); });
        }
        // The window table's first row: "humpty dumpt" → "y" (examples/README.md).
        if (id === 'generating') assert.match(info.text, /"humpty dumpt""y"/);
        if (id === 'captioning') assert.match(info.text, /class word right\d+\.\d%measured properties right\d+\.\d%BLEU-4/);
        if (id === 'self-attention') assert.match(info.text, /0\.187·v1 \+ 0\.045·v2 \+ 0\.768·v3/);
        if (id === 'encoder-decoder') {
          await startTraining(page, '#train-reversers');
          await page.waitForFunction(() => /exact/.test(document.getElementById('page-body')!.textContent!), undefined, { timeout: 200_000 });
        }
        await page.screenshot({ path: join(ARTIFACTS, `article-${id}.png`), fullPage: true });
      }
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      server.close();
    }
  });

  it('the playground looks inside its model: head removal with the costliest heads highlighted, rollout, logit lens and probes', { timeout: 240_000 }, async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const server = await servePlayground(PLAYGROUND_DIR, 0);
    const browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
    const problems: string[] = [];
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      page.on('pageerror', (e: Error) => problems.push(`page: ${e.message}`));
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await page.waitForFunction(() => document.getElementById('model-info')!.textContent!.includes('parameters'));
      await page.click('#inspect');
      await page.waitForSelector('#head-removal', { timeout: 200_000 });
      const got = await page.evaluate(() => ({
        rows: document.querySelectorAll('#head-removal tr').length,
        top: document.querySelectorAll('#head-removal td.top').length,
        lens: document.getElementById('inspect-out')!.textContent!,
        rollout: document.querySelectorAll('#rollout').length,
        probeRows: document.querySelectorAll('#probes tr').length,
      }));
      assert.equal(got.rollout, 1, 'the rollout is drawn');
      assert.equal(got.probeRows, 1 + 3, 'a probe row for the embeddings and each of the 2 blocks');
      assert.match(got.lens, /next is a vowel/);
      assert.equal(got.rows, 1 + 2, 'a header and one row per layer (the default 2 layers)');
      assert.equal(got.top, 3);
      assert.match(got.lens, /logit lens .*embeddings [\d.]+ · block 1 [\d.]+ · block 2 [\d.]+/);
      await page.locator('#inspect-panel').screenshot({ path: join(ARTIFACTS, 'playground-inspect.png') });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      server.close();
    }
  });
});
