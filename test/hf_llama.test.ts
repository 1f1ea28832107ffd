import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadModel } from '../src/io/model_dir.js';
import { readSafetensors, writeSafetensors, type DType, type TensorEntry } from '../src/io/safetensors.js';
import { Llama } from '../src/models/llama.js';
import { noGrad } from '../src/tensor/autograd.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { UserError } from '../src/util/errors.js';
import { assertClose, hasShared, runAttn, SHARED } from './helpers.js';

const LLAMA_DIR = resolve(SHARED, 'reference', 'llama-tiny');
const skip = hasShared(LLAMA_DIR) ? false : `../shared/reference/llama-tiny is absent (${LLAMA_DIR})`;
const work = mkdtempSync(join(tmpdir(), 'attn-hf-llama-'));
after(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** A copy of llama-tiny's config.json and weights (no expected.safetensors), edited by `edit`. */
function copyDir(edit?: (dir: string) => void): string {
  const dir = join(work, `m${n++}`);
  cpSync(LLAMA_DIR, dir, { recursive: true, filter: (p) => !p.endsWith('expected.safetensors') });
  edit?.(dir);
  return dir;
}
const weights = () => readSafetensors(join(LLAMA_DIR, 'model.safetensors')).tensors;
const ids = Int32Array.of(5, 17, 3, 88, 40, 2);
const logitsOf = (dir: string) => {
  const { model } = loadModel(dir);
  return noGrad(() => model.forward(ids, [1, 6]).logits.data);
};
const userError = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n');

/** Split the tensors over two shard files and write the index. */
function shard(dir: string, tensors: Map<string, TensorEntry>): void {
  unlinkSync(join(dir, 'model.safetensors'));
  const names = [...tensors.keys()];
  const parts = [names.slice(0, 5), names.slice(5)];
  const weight_map: Record<string, string> = {};
  parts.forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(join(dir, file), new Map(part.map((k) => [k, tensors.get(k)!])));
    for (const k of part) weight_map[k] = file;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map }));
}

describe('Hugging Face Llama-family directories', { skip }, () => {
  it('loads llama-tiny as a Llama with its HF config', () => {
    const loaded = loadModel(LLAMA_DIR);
    assert.equal(loaded.source, 'hf-llama');
    assert.ok(loaded.model instanceof Llama);
    assert.equal(loaded.config.n_kv_head, 2);
    assert.equal(loaded.config.tie_word_embeddings, true);
  });

  it('sharded weights (model.safetensors.index.json) load to the same model', () => {
    const dir = copyDir((d) => shard(d, weights()));
    assert.deepEqual(logitsOf(dir), logitsOf(LLAMA_DIR));
  });

  it('F16 and BF16 weights load, within their precision', () => {
    const want = logitsOf(LLAMA_DIR);
    for (const [dtype, tol] of [['F16', 1e-2], ['BF16', 6e-2]] as [DType, number][]) {
      const dir = copyDir((d) => {
        const t = new Map([...weights()].map(([k, v]) => [k, { ...v, dtype }]));
        writeSafetensors(join(d, 'model.safetensors'), t);
      });
      assertClose(logitsOf(dir), want, tol, dtype);
    }
  });

  it('bad input: one clear line each', () => {
    const missingShard = copyDir((d) => { shard(d, weights()); unlinkSync(join(d, 'model-00002-of-00002.safetensors')); });
    assert.throws(() => loadModel(missingShard), userError(/shard model-00002-of-00002.safetensors named by model.safetensors.index.json is missing/));

    const lying = copyDir((d) => {
      shard(d, weights());
      const idx = JSON.parse(readFileSync(join(d, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
      idx.weight_map['model.norm.weight'] = 'model-00001-of-00002.safetensors';
      writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify(idx));
    });
    assert.throws(() => loadModel(lying), userError(/has no tensor model.norm.weight, which model.safetensors.index.json places there/));

    const wrongShape = copyDir((d) => {
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 64 }));
    });
    assert.throws(() => loadModel(wrongShape), userError(/mlp\.gate_proj\.weight has shape \[88,32\] but config.json needs \[64,32\]/));

    const unknown = copyDir((d) => {
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, model_type: 'phi3', architectures: ['Phi3ForCausalLM'] }));
    });
    assert.throws(() => loadModel(unknown), userError(/"phi3" is not supported.*LlamaForCausalLM/));

    const missing = copyDir((d) => {
      const t = weights();
      t.delete('model.layers.1.mlp.up_proj.weight');
      writeSafetensors(join(d, 'model.safetensors'), t);
    });
    assert.throws(() => loadModel(missing), userError(/missing tensor model.layers.1.mlp.up_proj.weight/));

    const untiedHead = copyDir((d) => {
      const t = weights();
      const e = t.get('model.embed_tokens.weight')!;
      t.set('lm_head.weight', { ...e, data: Float32Array.from(e.data as Float32Array, (v) => v + 1) });
      writeSafetensors(join(d, 'model.safetensors'), t);
    });
    assert.throws(() => loadModel(untiedHead), userError(/lm_head.weight differs from model.embed_tokens.weight/));

    const noWeights = copyDir((d) => unlinkSync(join(d, 'model.safetensors')));
    assert.throws(() => loadModel(noWeights), userError(/has neither model.safetensors nor model.safetensors.index.json/));
  });

  it('an untied checkpoint (lm_head.weight, tie_word_embeddings false) loads its own head', () => {
    const dir = copyDir((d) => {
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, tie_word_embeddings: false }));
      const t = weights();
      t.set('lm_head.weight', { ...t.get('model.embed_tokens.weight')! });
      writeSafetensors(join(d, 'model.safetensors'), t);
    });
    const m = loadModel(dir).model as Llama;
    assert.ok(m.lm_head);
    assert.deepEqual(logitsOf(dir), logitsOf(LLAMA_DIR));
  });

  it('attn sample runs on a Llama directory, and on its int8 copy from attn quantize', () => {
    // Every id of the random model must decode: a character tokenizer of exactly 97 symbols.
    const chars = String.fromCharCode(...Array.from({ length: 95 }, (_, i) => 32 + i)) + '\né';
    const tok = CharTokenizer.fromText(chars);
    assert.equal(tok.vocabSize, 97);
    const dir = copyDir((d) => writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(tok.toJSON())));
    const r = runAttn(['sample', '--model', dir, '--prompt', 'abc', '--max-new-tokens', '5', '--temperature', '0'], work);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith('abc'), r.stdout);
    const q = runAttn(['quantize', '--model', dir, '--out', join(work, 'q')], work);
    assert.equal(q.code, 0, q.stderr);
    const s = runAttn(['sample', '--model', join(work, 'q'), '--prompt', 'abc', '--max-new-tokens', '5', '--temperature', '0'], work);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(s.stdout.startsWith('abc'), s.stdout);
  });
});
