import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { floatToHalf, quantizeMatrix, QUANT_BLOCKS } from '../src/backend/quantized_matrix.js';
import { runExport } from '../src/cli/export.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { parseGGUF, readGGUF, tensorAsQuantized, tensorToFloat32, type GGUFValue } from '../src/io/gguf.js';
import { serializeGGUF, writeGGUF, type GGUFTensorOut } from '../src/io/gguf_write.js';
import { loadModel, modelFiles } from '../src/io/model_dir.js';
import { GPT } from '../src/models/gpt.js';
import { Llama } from '../src/models/llama.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { buildTokenizer } from '../src/tokenizers/index.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, runAttn } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'attn-gguf-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const rng = new Rng(9);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
const bytesOf = (a: Float32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

const META = new Map<string, GGUFValue>([
  ['general.architecture', { type: 'string', value: 'test' }],
  ['u8', { type: 'uint8', value: 250 }], ['i8', { type: 'int8', value: -5 }], ['u16', { type: 'uint16', value: 65000 }],
  ['i16', { type: 'int16', value: -3000 }], ['u32', { type: 'uint32', value: 4e9 }], ['i32', { type: 'int32', value: -2e9 }],
  ['f32', { type: 'float32', value: 0.5 }], ['b', { type: 'bool', value: true }], ['s', { type: 'string', value: 'héllo ▁ world' }],
  ['u64', { type: 'uint64', value: 2n ** 60n }], ['i64', { type: 'int64', value: -(2n ** 50n) }], ['f64', { type: 'float64', value: Math.PI }],
  ['arr.s', { type: 'array', itemType: 'string', value: ['a', 'Ġb', ''] }], ['arr.i', { type: 'array', itemType: 'int32', value: [1, -2, 3] }],
]);

function sampleTensors(): GGUFTensorOut[] {
  const f = rand(3 * 5);
  const h = Uint16Array.from(rand(64), (x) => floatToHalf(x));
  const raw = (type: 'q4_k' | 'q6_k', rows: number) => Uint8Array.from({ length: rows * QUANT_BLOCKS[type].bytes }, () => rng.int(256));
  return [
    { name: 'a.f32', dims: [5, 3], type: 'f32', data: bytesOf(f) },
    { name: 'b.f16', dims: [64], type: 'f16', data: bytesOf(h) },
    { name: 'c.bf16', dims: [2, 2], type: 'bf16', data: Uint8Array.of(0x80, 0x3f, 0, 0x40, 0x80, 0xbf, 0, 0) },
    { name: 'd.q8_0', dims: [64, 3], type: 'q8_0', data: quantizeMatrix('q8_0', rand(192), 3, 64).data },
    { name: 'e.q4_0', dims: [32, 2], type: 'q4_0', data: quantizeMatrix('q4_0', rand(64), 2, 32).data },
    { name: 'f.q4_k', dims: [256, 2], type: 'q4_k', data: raw('q4_k', 2) },
    { name: 'g.q6_k', dims: [256, 1], type: 'q6_k', data: raw('q6_k', 1) },
  ];
}

describe('GGUF v3 format', () => {
  it('write → read: every metadata type and every tensor type come back the same; writing again gives the same bytes', () => {
    const tensors = sampleTensors();
    const bytes = serializeGGUF(META, tensors);
    const file = parseGGUF(bytes);
    assert.equal(file.version, 3);
    assert.deepEqual([...file.metadata], [...META]);
    for (const t of tensors) {
      const got = file.tensors.get(t.name)!;
      assert.equal(got.type, t.type);
      assert.deepEqual(got.dims, t.dims);
      assert.deepEqual(got.bytes, t.data);
      assert.equal((got.bytes.byteOffset - bytes.byteOffset) % 32, 0, `${t.name} aligned`);
    }
    assert.deepEqual(Array.from(tensorToFloat32(file.tensors.get('c.bf16')!)), [1, 2, -1, 0]);
    assert.deepEqual(tensorToFloat32(file.tensors.get('a.f32')!), new Float32Array(tensors[0]!.data.slice().buffer));
    const q = tensorAsQuantized(file.tensors.get('d.q8_0')!);
    assert.deepEqual([q.type, q.rows, q.cols], ['q8_0', 3, 64]);
    const again = serializeGGUF(file.metadata, [...file.tensors.values()].map((t) => ({ name: t.name, dims: t.dims, type: t.type, data: t.bytes })));
    assert.deepEqual(again, bytes);
  });

  it('honours general.alignment', () => {
    const meta = new Map<string, GGUFValue>([['general.alignment', { type: 'uint32', value: 64 }]]);
    const bytes = serializeGGUF(meta, sampleTensors(), 64);
    const file = parseGGUF(bytes);
    assert.equal(file.alignment, 64);
    for (const t of file.tensors.values()) assert.equal(t.bytes.byteOffset % 64, 0);
  });

  it('writes atomically and reads from disk', () => {
    const path = join(dir, 'rt.gguf');
    writeGGUF(path, META, sampleTensors());
    assert.equal(readGGUF(path).tensors.size, 7);
    assert.ok(!existsSync(`${path}.tmp-${process.pid}`));
  });

  it('a whole file in huge pages (native backend): the same bytes, every tensor a view of one buffer', (t) => {
    const addon = loadAddon();
    if (!addon) return t.skip('native addon not built');
    const path = join(dir, 'huge.gguf');
    const tensors = sampleTensors();
    writeGGUF(path, META, tensors);
    registerBackend(createNativeBackend(addon));
    setBackend('native');
    try {
      const file = readGGUF(path, { hugePageFileBytes: 0, readChunkBytes: 7 });
      assert.deepEqual([...file.metadata], [...META]);
      const buffers = new Set<ArrayBufferLike>();
      for (const t of tensors) {
        const got = file.tensors.get(t.name)!;
        assert.deepEqual([got.type, got.dims, got.bytes], [t.type, t.dims, t.data]);
        buffers.add(got.bytes.buffer);
      }
      assert.equal(buffers.size, 1);
      const [buffer] = buffers;
      assert.ok(buffer!.byteLength >= readFileSync(path).length);
    } finally {
      setBackend('js');
    }
  });

  it('a file too large for one buffer: written and read tensor by tensor (the >4 GiB path, with its sizes lowered)', () => {
    const path = join(dir, 'big.gguf');
    const tensors = sampleTensors();
    let made = 0;
    // Lazy tensors: each one's bytes are made only when the writer reaches it.
    const lazy = tensors.map((t) => ({ ...t, data: () => { made++; return t.data; } }));
    writeGGUF(path, META, lazy, 32, 7);
    assert.equal(made, tensors.length);
    assert.deepEqual(new Uint8Array(readFileSync(path)), serializeGGUF(META, tensors), 'the same bytes as in one buffer');
    const file = readGGUF(path, { wholeFileBytes: 0, readChunkBytes: 5 }); // header read as growing prefixes, each tensor in 5-byte reads
    assert.deepEqual([...file.metadata], [...META]);
    for (const t of tensors) {
      const got = file.tensors.get(t.name)!;
      assert.deepEqual([got.type, got.dims, got.bytes], [t.type, t.dims, t.data]);
      assert.equal(got.bytes.byteOffset, 0, `${t.name} in a buffer of its own`);
    }
    assert.deepEqual(tensorToFloat32(file.tensors.get('a.f32')!), new Float32Array(tensors[0]!.data.slice().buffer));
    writeFileSync(path, readFileSync(path).subarray(0, -40));
    assert.throws(() => readGGUF(path, { wholeFileBytes: 0, readChunkBytes: 5 }), (e: Error) => e instanceof UserError && /tensor g\.q6_k ends at byte \d+ but the file has \d+ bytes \(truncated file\)/.test(e.message));
  });

  describe('bad files: one clear UserError each', () => {
    const good = () => serializeGGUF(new Map([['k', { type: 'uint32', value: 1 }] as [string, GGUFValue]]), [{ name: 't', dims: [32], type: 'q8_0', data: new Uint8Array(34) }]);
    // Layout of `good`: magic 4, version 4, counts 16; key (8 + 1), type 4, value 4 → 41; tensor name (8 + 1), n_dims 4, dim 8 → 62: type at 62, offset at 66.
    const err = (bytes: Uint8Array, pattern: RegExp) => assert.throws(() => parseGGUF(bytes, 'x.gguf'), (e: Error) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'));
    it('bad magic', () => err(new TextEncoder().encode('PK\u0003\u0004 not gguf'), /x\.gguf: not a GGUF file \(it starts with bytes 50 4b 03 04/));
    it('empty file', () => err(new Uint8Array(0), /not a GGUF file/));
    it('unsupported version', () => { const b = good(); b[4] = 1; err(b, /GGUF version 1 is not supported/); });
    it('unknown tensor type (names the number)', () => { const b = good(); b[62] = 99; err(b, /tensor t has ggml type 99, which attn does not read/); });
    it('unknown metadata value type', () => { const b = good(); b[33] = 77; err(b, /metadata k has unknown value type 77/); });
    it('truncated tensor data', () => err(good().subarray(0, good().length - 40), /tensor t ends at byte \d+ but the file has \d+ bytes \(truncated file\)/));
    it('truncated header', () => err(good().subarray(0, 50), /truncated GGUF file \(it ends inside the tensor/));
    it('misaligned offset', () => { const b = good(); b[66] = 4; err(b, /tensor t is at offset 4, not a multiple of the alignment 32/); });
    it('a missing file', () => assert.throws(() => readGGUF(join(dir, 'nope.gguf')), UserError));
  });
});

describe('GPT-2 export to GGUF and back', () => {
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(40) + 'a stitch in time saves nine; all that glitters is not gold. '.repeat(30);
  const tokenizer = buildTokenizer('bpe', text, 300);
  const config = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 64, block_size: 32, vocab_size: 300, bias: true });
  const model = new GPT(config, new Rng(3));
  const modelDir = join(dir, 'model');
  writeDirAtomic(modelDir, modelFiles(model, tokenizer));
  const ids = tokenizer.encode('the lazy fox saves nine');
  const logits = (m: GPT | Llama) => noGrad(() => m.forward(ids, [1, ids.length]).logits.data);
  const want = logits(model);

  for (const [type, tol] of [['f32', 0], ['f16', 2e-3], ['q8_0', 0.05], ['q4_0', 0.5]] as const) {
    it(`${type}: export → loadModel(FILE.gguf) gives the same model (logits within ${tol}), tokenizer and llama.cpp's names`, () => {
      const path = join(dir, `m-${type}.gguf`);
      runExport({ model: modelDir, to: 'gguf', out: path, type });
      const file = readGGUF(path);
      assert.equal(file.metadata.get('general.architecture')?.value, 'gpt2');
      assert.equal(file.metadata.get('gpt2.block_count')?.value, 2);
      assert.equal(file.metadata.get('gpt2.feed_forward_length')?.value, 256);
      assert.equal(file.metadata.get('tokenizer.ggml.model')?.value, 'gpt2');
      for (const n of ['token_embd.weight', 'position_embd.weight', 'blk.1.attn_qkv.weight', 'blk.0.attn_output.bias', 'blk.0.ffn_up.weight', 'blk.0.ffn_down.weight', 'blk.1.attn_norm.weight', 'blk.1.ffn_norm.bias', 'output_norm.weight']) assert.ok(file.tensors.has(n), n);
      assert.deepEqual(file.tensors.get('blk.0.attn_qkv.weight')!.dims, [64, 192]);
      assert.equal(file.tensors.get('blk.0.ffn_up.weight')!.type, type);
      assert.equal(file.tensors.get('blk.0.attn_norm.weight')!.type, 'f32');
      assert.equal(file.tensors.get('position_embd.weight')!.type, 'f32');
      const loaded = loadModel(path);
      assert.equal(loaded.source, 'gguf');
      assert.ok(loaded.model instanceof GPT);
      assert.deepEqual(loaded.config, model.config);
      assertClose(logits(loaded.model), want, tol || 0, type);
      if (type === 'f32') assert.deepEqual(logits(loaded.model), want);
      assert.deepEqual(loaded.tokenizer!.encode(text.slice(0, 200)), tokenizer.encode(text.slice(0, 200)));
      assert.equal(loaded.quantized!.size, type.startsWith('q') ? 2 * 4 + 1 : 0);
      if (type.startsWith('q')) assert.equal(loaded.quantized!.get('h.0.mlp.c_fc.weight')!.type, type);
    });
  }

  it('CLI: attn export --to gguf --type q8_0 writes a file; a bad --type and a directory --out are one-line errors', () => {
    const out = join(dir, 'cli.gguf');
    const r = runAttn(['export', '--model', modelDir, '--to', 'gguf', '--type', 'q8_0', '--out', out], process.cwd());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readGGUF(out).tensors.get('blk.0.ffn_down.weight')!.type, 'q8_0');
    assertUserError(runAttn(['export', '--model', modelDir, '--to', 'gguf', '--type', 'q5_1', '--out', out], process.cwd()), /q5_1/);
    assertUserError(runAttn(['export', '--model', modelDir, '--to', 'gguf', '--out', dir], process.cwd()), /is a directory/);
  });

  it('loading a truncated or non-gpt2 GGUF is one clear error', () => {
    const path = join(dir, 'm-f32.gguf');
    const bytes = readFileSync(path);
    const cut = join(dir, 'cut.gguf');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    assert.throws(() => loadModel(cut), (e: Error) => e instanceof UserError && /truncated file/.test(e.message));
    const other = join(dir, 'other.gguf');
    writeGGUF(other, new Map([['general.architecture', { type: 'string', value: 'mamba' } as GGUFValue]]), []);
    assert.throws(() => loadModel(other), /architecture "mamba" is not supported/);
  });
});
