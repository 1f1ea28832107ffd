/**
 * What the browser tests share: Debian's Chromium driven by playwright-core,
 * the built playground, where screenshots go, and why the tests skip when a
 * piece is missing (ATTN_REQUIRE_BROWSER=1, as in CI, makes that an error).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PLAYGROUND_DIR } from '../src/cli/web.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = resolve(process.env.ATTN_ARTIFACTS ?? join(process.cwd(), 'dist', 'test-artifacts'));
export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/* eslint-disable @typescript-eslint/no-explicit-any */
async function loadPlaywright(): Promise<any | null> {
  const specifiers = ['playwright-core'];
  // A copy installed elsewhere (PLAYWRIGHT_CORE_DIR=/path/to/node_modules/playwright-core).
  if (process.env.PLAYWRIGHT_CORE_DIR) specifiers.push(pathToFileURL(join(process.env.PLAYWRIGHT_CORE_DIR, 'index.mjs')).href);
  for (const s of specifiers) {
    try {
      const m = await import(s);
      return m.chromium ? m : m.default;
    } catch {
      // try the next one
    }
  }
  return null;
}

export const pw = await loadPlaywright();

/** Why the browser tests cannot run here, or false. */
export const browserSkip: string | false = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
  : !pw
    ? 'playwright-core is not installed'
    : !existsSync(join(PLAYGROUND_DIR, 'index.html'))
      ? 'the playground is not built (npm run build:web)'
      : false;

if (browserSkip && process.env.ATTN_REQUIRE_BROWSER === '1') throw new Error(`ATTN_REQUIRE_BROWSER=1 but ${browserSkip}`);
