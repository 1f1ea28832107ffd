import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeDirAtomic } from '../src/io/atomic.js';
import { loadEmbedder, saveEmbedder } from '../src/io/embedder_dir.js';
import { loadModel, modelFiles } from '../src/io/model_dir.js';
import { loadSeq2Seq, saveSeq2Seq } from '../src/io/seq2seq_dir.js';
import { loadViT, vitFiles } from '../src/io/vit_dir.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { Transformer } from '../src/models/transformer.js';
import { parseTransformerConfig } from '../src/models/transformer_config.js';
import { ViT } from '../src/models/vit.js';
import { parseViTConfig } from '../src/models/vit_config.js';
import { PieceTokenizer } from '../src/tokenizers/piece.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { tinyGPT, tinyTokenizer } from './serve_fixture.js';

/**
 * An absurd size in config.json must be one clear line naming the key, found
 * before anything is allocated (it used to be a RangeError stack from a
 * typed-array allocation), in every loader.
 */

const root = mkdtempSync(join(tmpdir(), 'attn-limits-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A copy of `dir` whose config.json has `patch` merged in. */
let copies = 0;
function patched(files: Record<string, Uint8Array | string>, patch: Record<string, unknown>): string {
  const dir = join(root, `m${copies++}`);
  const config = JSON.parse(String(files['config.json'])) as Record<string, unknown>;
  writeDirAtomic(dir, { ...files, 'config.json': JSON.stringify({ ...config, ...patch }) });
  return dir;
}

function filesOf(save: (dir: string) => void): Record<string, Uint8Array | string> {
  const dir = join(root, `src${copies++}`);
  save(dir);
  const out: Record<string, Uint8Array | string> = {};
  for (const name of ['config.json', 'model.safetensors', 'tokenizer.json']) {
    try {
      out[name] = readFileSync(join(dir, name));
    } catch {
      /* not every kind writes a tokenizer */
    }
  }
  return out;
}

const oneLine = (key: string, more: RegExp) => (e: unknown) => {
  assert.ok(e instanceof UserError, `expected a UserError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
  assert.ok(!e.message.includes('\n'), e.message);
  assert.match(e.message, new RegExp(`config\\.json: ${key} is \\d+`));
  assert.match(e.message, more);
  return true;
};

const ABSURD = /beyond any sane size/;
const TOO_WIDE = /no tensor in .*model\.safetensors has a dimension that large/;
const TOO_DEEP = /number at most \d+ layers/;

describe('config sizes are checked before allocating, in every loader', () => {
  it('attn GPT (model_dir.ts)', () => {
    const files = modelFiles(tinyGPT(), tinyTokenizer());
    assert.throws(() => loadModel(patched(files, { n_embd: 1_000_000_000 })), oneLine('n_embd', ABSURD));
    assert.throws(() => loadModel(patched(files, { vocab_size: 4_000_000 })), oneLine('vocab_size', TOO_WIDE));
    assert.throws(() => loadModel(patched(files, { n_layer: 500 })), oneLine('n_layer', TOO_DEEP));
    assert.throws(() => loadModel(patched(files, { block_size: 1e12 })), oneLine('block_size', ABSURD));
    assert.throws(() => loadModel(patched(files, { n_head: 100000 })), oneLine('n_head', ABSURD));
  });

  it('Hugging Face GPT-2 (hf_gpt2.ts via model_dir.ts)', () => {
    const files = modelFiles(tinyGPT(), tinyTokenizer());
    const hf = { model_type: 'gpt2', n_layer: 2, n_head: 2, n_embd: 32, n_positions: 64, vocab_size: 96, format: undefined };
    assert.throws(() => loadModel(patched(files, { ...hf, n_embd: 1_000_000_000 })), oneLine('n_embd', ABSURD));
    assert.throws(() => loadModel(patched(files, { ...hf, n_positions: 3_000_000_000 })), oneLine('n_positions', ABSURD));
    assert.throws(() => loadModel(patched(files, { ...hf, vocab_size: 1_000_000 })), oneLine('vocab_size', TOO_WIDE));
  });

  it('ViT (vit_dir.ts)', () => {
    const config = parseViTConfig({ image_height: 4, image_width: 4, channels: 2, patch_size: 2, d_model: 8, n_layer: 1, n_head: 2, d_ff: 16, num_classes: 3, labels: ['a', 'b', 'c'], pixel_mean: [0, 0], pixel_std: [1, 1] });
    const files = vitFiles(new ViT(config, new Rng(1)));
    assert.throws(() => loadViT(patched(files, { d_model: 1_000_000_000 })), oneLine('d_model', ABSURD));
    assert.throws(() => loadViT(patched(files, { d_ff: 100_000 })), oneLine('d_ff', TOO_WIDE));
    assert.throws(() => loadViT(patched(files, { image_height: 2 ** 31, image_width: 2 ** 31 })), oneLine('image_height', ABSURD));
    assert.throws(() => loadViT(patched(files, { n_layer: 1000 })), oneLine('n_layer', TOO_DEEP));
  });

  it('encoder–decoder (seq2seq_dir.ts)', () => {
    const tokenizer = PieceTokenizer.fromTexts(['abc', 'xyz']);
    const config = parseTransformerConfig({ vocab_size: tokenizer.vocabSize, n_encoder_layers: 1, n_decoder_layers: 1, d_model: 16, n_head: 2, d_ff: 32 });
    const files = filesOf((dir) => saveSeq2Seq(dir, { model: new Transformer(config, new Rng(1)), tokenizer, task: { data: 't.tsv', reverse: false } }));
    assert.throws(() => loadSeq2Seq(patched(files, { d_model: 1_000_000_000 })), oneLine('d_model', ABSURD));
    assert.throws(() => loadSeq2Seq(patched(files, { max_length: 10_000_000_000 })), oneLine('max_length', ABSURD));
    assert.throws(() => loadSeq2Seq(patched(files, { n_decoder_layers: 400 })), oneLine('n_decoder_layers', TOO_DEEP));
  });

  it('embedder (embedder_dir.ts)', () => {
    const tokenizer = WordTokenizer.fromText('the red fox jumps over the lazy dog', 64);
    const model = new Embedder(parseEmbedderConfig({ vocab_size: tokenizer.vocabSize, d_model: 16, n_layer: 1, n_head: 2 }), new Rng(1));
    const files = filesOf((dir) => saveEmbedder(dir, model, tokenizer));
    assert.throws(() => loadEmbedder(patched(files, { d_model: 1_000_000_000 })), oneLine('d_model', ABSURD));
    assert.throws(() => loadEmbedder(patched(files, { d_ff: 50_000 })), oneLine('d_ff', TOO_WIDE));
    assert.throws(() => loadEmbedder(patched(files, { max_len: 1e10 })), oneLine('max_len', ABSURD));
  });

  it('sane configs still load, and a fractional or negative size is named too', () => {
    const files = modelFiles(tinyGPT(), tinyTokenizer());
    assert.equal(loadModel(patched(files, {})).config.n_embd, 32);
    assert.throws(() => loadModel(patched(files, { n_embd: 32.5 })), (e: unknown) => e instanceof UserError && /n_embd is 32\.5; it must be a positive integer/.test(e.message));
  });
});
