import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadGPT } from '../src/io/model_dir.js';
import { readSafetensors, writeSafetensors, type TensorEntry } from '../src/io/safetensors.js';
import { noGrad } from '../src/tensor/autograd.js';
import { hasShared, REFERENCE_DIR, referenceSkip } from './helpers.js';

const skip = referenceSkip(!hasShared(REFERENCE_DIR) && `../shared/reference/gpt2-tiny is absent (${REFERENCE_DIR}): skipped`);
const ids = Int32Array.of(14, 78, 3, 1, 76, 77, 6, 37);

/** Copy the reference model, rewriting its weights with `edit`. */
function variant(edit: (t: Map<string, TensorEntry>) => Map<string, TensorEntry>, config?: (c: Record<string, unknown>) => Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'attn-hf-'));
  cpSync(REFERENCE_DIR, dir, { recursive: true });
  const f = readSafetensors(join(dir, 'model.safetensors'));
  writeSafetensors(join(dir, 'model.safetensors'), edit(f.tensors), f.metadata);
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')))));
  return dir;
}

const logitsOf = (dir: string): Float32Array => noGrad(() => loadGPT(dir).model.forward(ids, [1, 8]).logits.data);

describe('Hugging Face GPT-2 directories', { skip }, () => {
  const base = logitsOf(REFERENCE_DIR);

  it('load F16 and BF16 weights (widened to float32)', () => {
    for (const [dtype, tol] of [['F16', 2e-2], ['BF16', 1e-1]] as const) {
      const dir = variant((t) => new Map([...t].map(([n, e]) => [n, { ...e, dtype }])));
      const got = logitsOf(dir);
      const worst = got.reduce((w, v, i) => Math.max(w, Math.abs(v - base[i]!)), 0);
      assert.ok(worst > 0 && worst < tol, `${dtype} worst logit error ${worst}`);
      rmSync(dir, { recursive: true });
    }
  });

  it('accept the "transformer." prefix, mask buffers and a tied lm_head', () => {
    const dir = variant((t) => {
      const m = new Map([...t].map(([n, e]) => [`transformer.${n}`, e]));
      m.set('lm_head.weight', t.get('wte.weight')!);
      m.set('transformer.h.0.attn.bias', { dtype: 'F32', shape: [1, 1, 16, 16], data: new Float32Array(256) });
      return m;
    });
    assert.deepEqual(Array.from(logitsOf(dir)), Array.from(base));
    rmSync(dir, { recursive: true });
  });

  it('reject an untied head, a missing tensor, a wrong shape and another activation', () => {
    const cases: Array<[string, RegExp]> = [
      [variant((t) => new Map([...t, ['lm_head.weight', { ...t.get('wte.weight')!, data: new Float32Array(101 * 32) }]])), /untied/],
      [variant((t) => new Map([...t].filter(([n]) => n !== 'ln_f.bias'))), /missing tensor ln_f\.bias/],
      [variant((t) => t, (c) => ({ ...c, n_embd: 64 })), /has shape/],
      [variant((t) => t, (c) => ({ ...c, activation_function: 'relu' })), /activation_function "relu" is not supported/],
    ];
    for (const [dir, pattern] of cases) {
      assert.throws(() => loadGPT(dir), pattern);
      rmSync(dir, { recursive: true });
    }
  });
});
