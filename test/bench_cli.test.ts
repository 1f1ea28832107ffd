import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { runAttn } from './helpers.js';

describe('attn bench --workloads train with several modes', () => {
  it('prints a row for each mode (tokens/s, peak RSS), named, besides the comparison', () => {
    const r = runAttn(['bench', '--workloads', 'train', '--config', 'S', '--precision', 'fp32,bf16', '--recompute', 'both', '--steps', '1', '--threads', '1', '--no-torch'], tmpdir());
    assert.equal(r.code, 0, r.stderr);
    for (const mode of ['fp32', 'fp32\\+recompute', 'bf16', 'bf16\\+recompute']) {
      assert.match(r.stdout, new RegExp(`^train S ${mode} +\\d+ tok/s \\(attn, .*peak RSS \\d+ MB\\)$`, 'm'), r.stdout);
    }
    assert.match(r.stdout, /^train S bf16 \/ fp32: [\d.]+× tokens\/s/m);
  });
});
