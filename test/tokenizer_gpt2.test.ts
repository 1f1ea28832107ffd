import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { getEncoding, type Tiktoken } from 'js-tiktoken';
import { gpt2FromJsTiktoken } from '../src/bench/tokenizers.js';
import { loadGPT } from '../src/io/model_dir.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { BPETokenizer, bpeFromGPT2Files, bytesToUnicode, loadDirTokenizer, loadTokenizerFile, trainBPE, type Tokenizer } from '../src/tokenizers/index.js';
import { hasShared, REFERENCE_DIR, referenceSkip, SHAKESPEARE } from './helpers.js';

/**
 * GPT-2 exactness. js-tiktoken (a dev dependency) is the oracle: its ids for
 * GPT-2 are the reference. GPT-2's real files are not on this machine, so the
 * test writes them — encoder.json + vocab.bpe, and a Hugging Face
 * tokenizer.json — from the ranks js-tiktoken ships, loads them through
 * attn's loaders, and compares ids with js-tiktoken's.
 */
const work = mkdtempSync(join(tmpdir(), 'attn-gpt2-tok-'));
after(() => rmSync(work, { recursive: true, force: true }));

let oracle: Tiktoken;
let fromFiles: Tokenizer;
let fromHF: Tokenizer;
let encoderJson: string;
let vocabBpe: string;

function gpt2Files(tok: BPETokenizer): { encoder: Record<string, number>; merges: string[] } {
  const encoder: Record<string, number> = {};
  for (let id = 0; id < tok.vocabSize - tok.specialTokens.size; id++) encoder[bytesToUnicode(tok.tokenBytes(id))] = id;
  for (const [s, id] of tok.specialTokens) encoder[s] = id;
  const name = (id: number): string => bytesToUnicode(tok.tokenBytes(id));
  return { encoder, merges: tok.merges.map(([a, b]) => `${name(a)} ${name(b)}`) };
}

before(async () => {
  oracle = getEncoding('gpt2');
  const derived = (await gpt2FromJsTiktoken())!;
  const { encoder, merges } = gpt2Files(derived);
  encoderJson = JSON.stringify(encoder);
  vocabBpe = '#version: 0.2\n' + merges.join('\n') + '\n';
  writeFileSync(join(work, 'encoder.json'), encoderJson);
  writeFileSync(join(work, 'vocab.bpe'), vocabBpe);
  fromFiles = loadDirTokenizer(work)!;
  const hf = {
    version: '1.0',
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab: encoder, merges },
  };
  writeFileSync(join(work, 'tokenizer.json'), JSON.stringify(hf));
  fromHF = loadTokenizerFile(join(work, 'tokenizer.json'));
});

const same = (tok: Tokenizer, text: string): void => {
  const want = oracle.encode(text, 'all');
  const got = tok.encode(text, { allowedSpecial: 'all' });
  assert.deepEqual(Array.from(got), want, `ids for ${JSON.stringify(text.slice(0, 80))}`);
  if (!/\p{Cs}/u.test(text)) assert.equal(tok.decode(got), text);
};

const CASES = [
  'Hello world', "I'm sure they'll say it's what we've done, isn't it? I'd go; you're RIGHT'S", "don't DON'T 'tis ''s",
  '日本語のテキスト、中文字符和한국어', '👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽 thumbs 🙂🙃', 'e\u0301 n\u0303 a\u0308\u0301 Zalgo: Z\u0351\u0307\u033c',
  'שלום עולם مرحبا بالعالم \u200f\u202e', '   leading   and    trailing   \n\n\n  \t\t x \r\n', '\u00a0\u3000 \u2028x\u2029',
  '3.14159 1,000,000 2024-01-01 ٣٤٥ ²³ Ⅻ 0x1F', '<|endoftext|>a<|endoftext|> <|endoftext', 'a\ud800b\udc00c', '\ufeffBOM',
  '', ' ', '\n', "'", 'Ġ ĠĠ', '\x00\x01\x7f',
];

describe('GPT-2 tokenizer loaded from its files', () => {
  it('encoder.json + vocab.bpe and the Hugging Face tokenizer.json give ids identical to js-tiktoken on hand-picked text', () => {
    assert.equal(fromFiles.vocabSize, 50257);
    assert.equal(fromHF.vocabSize, 50257);
    assert.equal(fromFiles.specialTokens.get('<|endoftext|>'), 50256);
    for (const text of CASES) {
      same(fromFiles, text);
      same(fromHF, text);
    }
  });

  it('agrees with js-tiktoken on generated Unicode, whitespace, numbers and contractions (property)', () => {
    const parts = fc.constantFrom("'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", ' ', '  ', '\n', '\t', '\r\n', '123', '4', ' 56', 'the', ' cat', 'É', '日本', '🙂', '👩‍💻', '\u0301', 'ש', '!', '?!', '...', '\u00a0', '\u3000');
    fc.assert(fc.property(fc.array(parts, { maxLength: 30 }).map((p) => p.join('')), (s) => same(fromFiles, s)), { numRuns: 500 });
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => same(fromHF, s)), { numRuns: 500 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => same(fromFiles, s)), { numRuns: 500 });
  });

  it('agrees with js-tiktoken on all of tinyshakespeare', { skip: hasShared(SHAKESPEARE) ? false : `${SHAKESPEARE} is absent: skipped` }, () => {
    const text = readFileSync(SHAKESPEARE, 'utf8');
    const want = oracle.encode(text);
    const got = fromFiles.encode(text);
    assert.equal(got.length, want.length);
    const first = want.findIndex((id, i) => id !== got[i]);
    assert.equal(first, -1, `first difference at token ${first}`);
    assert.equal(fromFiles.decode(got), text);
  });

  it('reads vocab.json + merges.txt, the Hugging Face names of the same files', () => {
    const dir = join(work, 'hfnames');
    cpSync(join(work, 'encoder.json'), join(dir, 'vocab.json'));
    cpSync(join(work, 'vocab.bpe'), join(dir, 'merges.txt'));
    same(loadDirTokenizer(dir)!, CASES[1]!);
  });

  it('refuses corrupt and mismatched files with a clear message', () => {
    const src = { encoder: 'encoder.json', merges: 'vocab.bpe' };
    assert.throws(() => bpeFromGPT2Files('{"a": 1', vocabBpe, src), /encoder.json: invalid JSON/);
    assert.throws(() => bpeFromGPT2Files('[1]', vocabBpe, src), /expected a JSON object of token → id/);
    assert.throws(() => bpeFromGPT2Files(encoderJson, '#version: 0.2\nĠt\n', src), /vocab.bpe: line 2 is not a merge/);
    const small = trainBPE('a tiny corpus of its own, a tiny corpus', { vocabSize: 270 });
    const smallMerges = '#version: 0.2\n' + gpt2Files(small).merges.join('\n');
    assert.throws(() => bpeFromGPT2Files(encoderJson, smallMerges, src), /encoder.json \+ vocab.bpe: merge \d+ \(.*\): ".*" is not in the vocabulary/);
    assert.throws(() => bpeFromGPT2Files(JSON.stringify(gpt2Files(small).encoder), vocabBpe, src), /merge \d+ .* is not in the vocabulary/);
    const hf = JSON.parse(readFileSync(join(work, 'tokenizer.json'), 'utf8'));
    const hfPath = join(work, 'bad-tokenizer.json');
    const tryHF = (patch: (o: Record<string, any>) => void): void => {
      const o = structuredClone(hf);
      patch(o);
      writeFileSync(hfPath, JSON.stringify(o));
      loadTokenizerFile(hfPath);
    };
    assert.throws(() => tryHF((o) => (o.model.type = 'WordPiece')), /model type "WordPiece" is not supported/);
    // A prefix space or a normalizer is no longer refused: such files load through the full Hugging Face pipeline.
    const loadHF = (patch: (o: Record<string, any>) => void): Tokenizer => {
      tryHF(patch);
      return loadTokenizerFile(hfPath);
    };
    const plain = loadTokenizerFile(join(work, 'tokenizer.json'));
    const prefixed = loadHF((o) => (o.pre_tokenizer.add_prefix_space = true));
    assert.equal(prefixed.type, 'hf');
    assert.deepEqual(prefixed.encode('hello world'), plain.encode(' hello world'));
    assert.deepEqual(loadHF((o) => (o.normalizer = { type: 'NFC' })).encode('cafe\u0301'), plain.encode('caf\u00e9'));
    assert.throws(() => tryHF((o) => (o.model.merges = o.model.merges.slice(0, 1000))), /do not match/);
    assert.throws(() => tryHF((o) => (o.added_tokens = [])), /"<\|endoftext\|>" \(id 50256\) is neither/);
    writeFileSync(hfPath, '{"model": ');
    assert.throws(() => loadTokenizerFile(hfPath), /bad-tokenizer.json: invalid JSON/);
  });
});

describe('Hugging Face GPT-2 model directories carry their tokenizer', { skip: referenceSkip(!hasShared(REFERENCE_DIR) && `${REFERENCE_DIR} is absent: skipped`) }, () => {
  it('loadModel returns the GPT-2 tokenizer, and refuses one larger than the model vocabulary', () => {
    const dir = join(work, 'hf-model');
    cpSync(REFERENCE_DIR, dir, { recursive: true });
    cpSync(join(work, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    assert.throws(() => loadGPT(dir), /tokenizer has 50257 tokens but the model's vocab_size is 101/);
    // Widen the reference model's embedding to GPT-2's 50257 rows.
    const f = readSafetensors(join(dir, 'model.safetensors'));
    const wteName = [...f.tensors.keys()].find((n) => n.endsWith('wte.weight'))!;
    const wte = f.tensors.get(wteName)!;
    const wide = new Float32Array(50257 * wte.shape[1]!);
    wide.set(wte.data as Float32Array);
    f.tensors.set(wteName, { ...wte, shape: [50257, wte.shape[1]!], data: wide });
    writeSafetensors(join(dir, 'model.safetensors'), f.tensors, f.metadata);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, vocab_size: 50257 }));
    const { tokenizer, source } = loadGPT(dir);
    assert.equal(source, 'hf-gpt2');
    assert.deepEqual(Array.from(tokenizer!.encode('Hello world')), oracle.encode('Hello world'));
  });
});
