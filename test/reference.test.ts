import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { runReferenceCheck } from '../src/reference/check.js';
import { hasShared, REFERENCE_DIR, referenceSkip } from './helpers.js';

const skip = referenceSkip(!hasShared(REFERENCE_DIR) && `../shared/reference/gpt2-tiny is absent (${REFERENCE_DIR}): PyTorch reference check skipped`);

describe('agreement with PyTorch (shared/reference)', () => {
  it('npm run reference passes on gpt2-tiny', { skip }, () => {
    const r = spawnSync('npm', ['run', '--silent', 'reference', '--', REFERENCE_DIR], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const g of ['logits', 'loss', 'gradients', 'adamw', 'greedy']) assert.match(r.stdout, new RegExp(`ok\\s+${g}`));
  });

  it('fails when PyTorch\'s numbers are perturbed beyond tolerance', { skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-ref-'));
    try {
      cpSync(REFERENCE_DIR, dir, { recursive: true });
      const path = join(dir, 'expected.safetensors');
      const f = readSafetensors(path);
      (f.tensors.get('grad.h.1.mlp.c_fc.weight')!.data as Float32Array)[5]! += 1e-3;
      writeSafetensors(path, f.tensors, f.metadata);
      const report = await runReferenceCheck(dir);
      assert.equal(report.pass, false);
      assert.deepEqual(report.groups.filter((g) => !g.pass).map((g) => g.group), ['gradients']);
      const cli = spawnSync(process.execPath, [resolve('dist/src/cli/main.js'), 'reference', dir], { encoding: 'utf8' });
      assert.equal(cli.status, 1);
      assert.match(cli.stdout, /FAIL gradients/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
