import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The PyTorch agreement tests skip where ../shared is absent, but CI sets
 * ATTN_REQUIRE_REFERENCE=1 and there they must fail: run them from a folder
 * with no ../shared beside it, with and without the variable.
 */
const FILES = ['reference.test.js', 'hf_gpt2.test.js', 'tokenizer_gpt2.test.js'];

function runWithoutShared(file: string, require: boolean): { status: number | null; out: string } {
  const root = mkdtempSync(join(tmpdir(), 'attn-guard-'));
  const cwd = join(root, 'repo'); // ../shared would be root/shared, which does not exist
  mkdirSync(cwd);
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, ATTN_REQUIRE_REFERENCE: require ? '1' : '' };
    delete env.NODE_TEST_CONTEXT; // a test runner of its own, not a child of this one
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', resolve('dist/test', file)], { cwd, env, encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe('ATTN_REQUIRE_REFERENCE turns a missing PyTorch reference from a skip into a failure', () => {
  for (const file of FILES) {
    it(file, () => {
      const skipped = runWithoutShared(file, false);
      assert.equal(skipped.status, 0, skipped.out);
      assert.match(skipped.out, /# SKIP .*is absent/);
      const required = runWithoutShared(file, true);
      assert.notEqual(required.status, 0, required.out);
      assert.match(required.out, /ATTN_REQUIRE_REFERENCE=1 but .*is absent/);
    });
  }
});
