import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ChatTemplate } from '../src/chat/template.js';
import { instructionRows, instructions } from '../src/data/instructions.js';
import { parseChatRow } from '../src/data/instructions_file.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { loadModel, modelFiles } from '../src/io/model_dir.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { trainBPE } from '../src/tokenizers/bpe_train.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { encodeConversation, heldOutSplit, lengthBatches, plainTextExamples, sftBatch } from '../src/train/sft_data.js';
import { chatVocabulary, CHATML_MARKERS } from '../src/train/sft_vocabulary.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, runAttn } from './helpers.js';

const chatml = new ChatTemplate(undefined, {});
const conversation = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Sum 1 2' },
  { role: 'assistant', content: '3' },
];

/** The text of the masked (learned) tokens and of the rest. */
function split(tok: { decode(ids: number[]): string }, e: { ids: Int32Array; mask: Uint8Array }): { learned: string; given: string } {
  const ids = Array.from(e.ids);
  return { learned: tok.decode(ids.filter((_, i) => e.mask[i])), given: tok.decode(ids.filter((_, i) => !e.mask[i])) };
}

/** A tiny char-level base model saved as a model directory. */
function saveTinyBase(dir: string, text: string, blockSize = 192): void {
  const tokenizer = CharTokenizer.fromText(text);
  const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: blockSize, vocab_size: tokenizer.vocabSize }), new Rng(3));
  writeDirAtomic(dir, modelFiles(model, tokenizer));
}

const tmp = mkdtempSync(join(tmpdir(), 'attn-sft-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('SFT data', () => {
  it('learns exactly the assistant turns (with their end markers), found by rendering prefixes', () => {
    const tok = CharTokenizer.fromText(chatml.render(conversation));
    const e = encodeConversation(chatml, tok, conversation, 1);
    const { learned, given } = split(tok, e);
    assert.equal(learned, 'Hello!<|im_end|>\n3<|im_end|>\n');
    assert.equal(given, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<|im_start|>user\nSum 1 2<|im_end|>\n<|im_start|>assistant\n');
    assert.equal(tok.decode(Array.from(e.ids)), chatml.render(conversation));
  });

  it('with a BPE tokenizer the markers become added special tokens: one id each, and the same mask', () => {
    const bpe = trainBPE('hello there, some text to merge on: hello hello there', { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
    const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 64, vocab_size: bpe.vocabSize }), new Rng(1));
    const grown = chatVocabulary(model, bpe, [chatml.render(conversation)], CHATML_MARKERS);
    assert.deepEqual(grown.added, ['<|im_start|>', '<|im_end|>']);
    assert.equal(grown.tokenizer.vocabSize, bpe.vocabSize + 2);
    assert.equal(grown.model.config.vocab_size, bpe.vocabSize + 2);
    const e = encodeConversation(chatml, grown.tokenizer, conversation, 1);
    const end = grown.tokenizer.specialTokens.get('<|im_end|>')!;
    assert.equal(Array.from(e.ids).filter((id) => id === end).length, 5);
    assert.equal(split(grown.tokenizer, e).learned, 'Hello!<|im_end|>\n3<|im_end|>\n');
  });

  it('growing a char vocabulary keeps every old row, starts new rows at the mean, and keeps the old scores', () => {
    const tok = CharTokenizer.fromText('abc ');
    const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, vocab_size: tok.vocabSize }), new Rng(2)).eval();
    const ids = Int32Array.of(0, 1, 2, 3, 1);
    const before = noGrad(() => model.forward(ids, [1, 5]).logits.data.slice());
    const grown = chatVocabulary(model, tok, ['ab|c<'], []);
    assert.deepEqual(grown.added, ['<', '|']);
    assert.deepEqual((grown.tokenizer as CharTokenizer).chars, [' ', 'a', 'b', 'c', '<', '|']);
    const after = noGrad(() => grown.model.forward(ids, [1, 5]).logits.data);
    const V = 6;
    const old = Array.from({ length: 5 }, (_, t) => Array.from(after.subarray(t * V, t * V + 4))).flat();
    assertClose(old, before, 1e-6);
    const wte = (grown.model as GPT).wte.weight.data;
    const mean = Array.from({ length: 8 }, (_, c) => [0, 1, 2, 3].reduce((s, r) => s + model.wte.weight.data[r * 8 + c]!, 0) / 4);
    assertClose(wte.subarray(4 * 8, 5 * 8), mean, 1e-6);
  });

  it('padding changes nothing: a padded batch\'s loss is the token-weighted loss of its rows alone', () => {
    const tok = CharTokenizer.fromText(chatml.render(conversation) + 'xyz');
    const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 256, vocab_size: tok.vocabSize }), new Rng(5)).eval();
    const a = encodeConversation(chatml, tok, conversation, 1);
    const b = encodeConversation(chatml, tok, [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'yz' }], 2);
    const loss = (bt: ReturnType<typeof sftBatch>) => noGrad(() => model.forward(bt.x, [bt.B, bt.T], bt.y).loss!.item());
    const both = sftBatch([a, b]);
    const [la, lb] = [sftBatch([a]), sftBatch([b])];
    assert.equal(both.T, a.ids.length - 1);
    assert.equal(both.y.subarray(both.T + b.ids.length - 1).every((v) => v === -1), true, 'padding has no targets');
    assert.equal(both.tokens, la.tokens + lb.tokens);
    assertClose([loss(both)], [(loss(la) * la.tokens + loss(lb) * lb.tokens) / both.tokens], 1e-5);
  });

  it('batches by length and holds out a reproducible split', () => {
    const tok = CharTokenizer.fromText(chatml.render(conversation));
    const ex = [3, 1, 2, 5, 4].map((n, i) => encodeConversation(chatml, tok, [{ role: 'user', content: 'H'.repeat(n) }, { role: 'assistant', content: 'i' }], i + 1));
    assert.deepEqual(lengthBatches(ex, 2).map((g) => g.map((e) => e.row)), [[2, 3], [1, 5], [4]]);
    assert.deepEqual(heldOutSplit(20, 0.2, 7), heldOutSplit(20, 0.2, 7));
    const s = heldOutSplit(20, 0.2, 7);
    assert.equal(s.val.length, 4);
    assert.deepEqual([...s.train, ...s.val].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
  });

  it('rehearsal text: windows cut at line ends, every token learned, rows numbered below 1 (never held out)', () => {
    const tok = CharTokenizer.fromText('abc \n1+2=3.');
    const ex = plainTextExamples(tok, 'abc abc\n\n1+2=3.\nabc\ncab\n', 8, 64);
    assert.deepEqual(ex.map((e) => tok.decode(Array.from(e.ids))), ['abc abc\n', '1+2=3.\nabc\n', 'cab\n']);
    assert.deepEqual(ex.map((e) => e.row), [-1, -2, -3]);
    assert.ok(ex.every((e) => e.mask.every((m) => m === 1)));
    const b = sftBatch(ex);
    assert.equal(b.tokens, ex.reduce((n, e) => n + e.ids.length - 1, 0));
    assert.equal(plainTextExamples(tok, 'abc '.repeat(40), 1000, 16)[0]!.ids.length, 17, 'a window is cut to the context');
  });

  it('bad rows are one line naming the row: no assistant turn, unknown role, neither shape', () => {
    assert.throws(() => parseChatRow({ messages: [{ role: 'user', content: 'hi' }] }, 4, 'd.jsonl'), (e: Error) => e instanceof UserError && /row 4 has no assistant turn/.test(e.message));
    assert.throws(() => parseChatRow({ messages: [{ role: 'wizard', content: 'hi' }, { role: 'assistant', content: 'x' }] }, 7, 'd.jsonl'), (e: Error) => e instanceof UserError && /row 7: message 1 has unknown role "wizard"/.test(e.message));
    assert.throws(() => parseChatRow({ text: 'x' }, 2, 'd.jsonl'), /row 2 has neither "messages" nor "prompt"\/"completion"/);
    assert.deepEqual(parseChatRow({ prompt: 'a', completion: 'b' }, 1, 'd').messages.map((m) => m.role), ['user', 'assistant']);
  });
});

describe('attn sft (CLI)', () => {
  const data = join(tmp, 'sft.jsonl');
  writeFileSync(data, instructionRows(instructions(40, 5)));
  const base = join(tmp, 'base');
  saveTinyBase(base, 'The fox has a bone. What is 1 plus 2? 1 + 2 = 3.\n');
  // A flat learning rate after warm-up: a run cut short at --max-iters 2 and resumed to 4 then follows the same schedule as one run to 4.
  const common = ['--data', data, '--batch-size', '4', '--lr', '1e-3', '--min-lr', '1e-3', '--warmup-iters', '1', '--eval-interval', '2', '--log-interval', '1'];

  it('trains, checkpoints, and --resume continues exactly', () => {
    const whole = runAttn(['sft', '--init', base, '--out', join(tmp, 'whole'), '--max-iters', '4', ...common], tmp);
    assert.equal(whole.code, 0, whole.stderr);
    const summary = JSON.parse(whole.stdout.trim().split('\n').pop()!);
    assert.equal(summary.step, 4);
    assert.ok(Number.isFinite(summary.val_loss));
    assert.match(whole.stderr, /added to the vocabulary for the chat format: .*"\|"/);
    const first = runAttn(['sft', '--init', base, '--out', join(tmp, 'half'), '--max-iters', '2', ...common], tmp);
    assert.equal(first.code, 0, first.stderr);
    const second = runAttn(['sft', '--resume', join(tmp, 'half'), '--max-iters', '4', ...common], tmp);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /resuming from step 2/);
    const a = readSafetensors(join(tmp, 'whole', 'model.safetensors')).tensors;
    const b = readSafetensors(join(tmp, 'half', 'model.safetensors')).tensors;
    for (const [name, t] of a) assertClose(b.get(name)!.data as Float32Array, t.data as Float32Array, 0, name);
    const state = JSON.parse(readFileSync(join(tmp, 'whole', 'sft.json'), 'utf8'));
    assert.equal(state.heldOut.length, 4);
    const ev = runAttn(['sft', 'eval', '--model', join(tmp, 'whole'), '--data', data], tmp);
    assert.equal(ev.code, 0, ev.stderr);
    const r = JSON.parse(ev.stdout.trim());
    assert.equal(r.rows, 4);
    assert.ok(r.exact_match >= 0 && r.exact_match <= 1);
  });

  it('--rehearse mixes plain text in: recorded in sft.json, and a resume with other text is refused', () => {
    const text = join(tmp, 'rehearse.txt');
    writeFileSync(text, 'The fox has a bone.\n1 + 2 = 3.\n'.repeat(20));
    const r = runAttn(['sft', '--init', base, '--out', join(tmp, 'reh'), '--max-iters', '2', '--rehearse', text, '--rehearse-chars', '40', ...common], tmp);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(readFileSync(join(tmp, 'reh', 'sft.json'), 'utf8'));
    assert.equal(state.rehearsal.windows, 14, 'windows of three lines (51 characters, then 42)');
    assert.equal(state.heldOut.length, 4);
    writeFileSync(join(tmp, 'other.txt'), '1 + 1 = 2.\n');
    const again = runAttn(['sft', '--resume', join(tmp, 'reh'), '--max-iters', '3', '--rehearse', join(tmp, 'other.txt'), ...common], tmp);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /rehearsal text differs/);
  });

  it('--resume without --data and --rehearse takes the files sft.json records (absolute paths): the same weights as one straight run', () => {
    const here = join(tmp, 'resume-cwd');
    mkdirSync(here);
    copyFileSync(data, join(here, 'sft.jsonl'));
    writeFileSync(join(here, 'rehearse.txt'), 'The fox has a bone.\n1 + 2 = 3.\n'.repeat(20));
    const flags = common.slice(2); // all but --data
    const files = ['--data', 'sft.jsonl', '--rehearse', 'rehearse.txt', '--rehearse-chars', '40'];
    const whole = runAttn(['sft', '--init', base, '--out', join(tmp, 'rwhole'), '--max-iters', '4', ...files, ...flags], here);
    assert.equal(whole.code, 0, whole.stderr);
    const half = join(tmp, 'rhalf');
    const first = runAttn(['sft', '--init', base, '--out', half, '--max-iters', '2', ...files, ...flags], here);
    assert.equal(first.code, 0, first.stderr);
    const state = JSON.parse(readFileSync(join(half, 'sft.json'), 'utf8'));
    assert.equal(state.data.path, join(here, 'sft.jsonl'));
    assert.deepEqual([state.rehearsal.path, state.rehearsal.chars], [join(here, 'rehearse.txt'), 40]);
    const second = runAttn(['sft', '--resume', half, '--max-iters', '4', ...flags], tmp); // another directory, no --data, no --rehearse
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /resuming from step 2/);
    const a = readSafetensors(join(tmp, 'rwhole', 'model.safetensors')).tensors;
    const b = readSafetensors(join(half, 'model.safetensors')).tensors;
    for (const [name, t] of a) assertClose(b.get(name)!.data as Float32Array, t.data as Float32Array, 0, name);
    // An older checkpoint: a relative path that is not there from here, or no path at all.
    writeFileSync(join(half, 'sft.json'), JSON.stringify({ ...state, data: { ...state.data, path: 'moved.jsonl' } }));
    assertUserError(runAttn(['sft', '--resume', half, '--max-iters', '5'], tmp), /the conversations file it was trained on, moved\.jsonl, is not there \(a path relative to where it was trained\); pass --data FILE\.jsonl/);
    const { path: _, ...noPath } = state.data;
    writeFileSync(join(half, 'sft.json'), JSON.stringify({ ...state, data: noPath }));
    assertUserError(runAttn(['sft', '--resume', half, '--max-iters', '5'], tmp), /sft\.json does not record the conversations file; pass --data FILE\.jsonl/);
    rmSync(join(here, 'rehearse.txt'));
    writeFileSync(join(half, 'sft.json'), JSON.stringify(state));
    assertUserError(runAttn(['sft', '--resume', half, '--max-iters', '5'], tmp), /the rehearsal text it was trained on, .*rehearse\.txt, is not there; pass --rehearse FILE/);
  });

  it('--lora-r trains adapters only: the base weights are unchanged and the adapter is saved in PEFT layout', () => {
    // A base whose vocabulary already has every character, so nothing is grown.
    const dir = join(tmp, 'base-full');
    saveTinyBase(dir, readFileSync(data, 'utf8') + '<|im_start|>assistant\n<|im_end|>');
    const r = runAttn(['sft', '--init', dir, '--out', join(tmp, 'lora'), '--max-iters', '3', '--lora-r', '2', ...common], tmp);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /LoRA adapters on 2 layers/);
    assert.ok(existsSync(join(tmp, 'lora', 'adapter_config.json')));
    const before = readSafetensors(join(dir, 'model.safetensors')).tensors;
    const afterT = readSafetensors(join(tmp, 'lora', 'model.safetensors')).tensors;
    for (const [name, t] of before) assertClose(afterT.get(name)!.data as Float32Array, t.data as Float32Array, 0, name);
    const adapter = readSafetensors(join(tmp, 'lora', 'adapter_model.safetensors')).tensors;
    const B = [...adapter].find(([n]) => n.endsWith('c_attn.lora_B.weight'))![1].data as Float32Array;
    assert.ok(B.some((v) => v !== 0), 'the adapter trained');
    assert.ok(loadModel(join(tmp, 'lora')).model instanceof GPT);
  });

  it('bad input: a row with no assistant turn, an unknown role, a LoRA target that names no layer', () => {
    const noAssistant = join(tmp, 'no-assistant.jsonl');
    writeFileSync(noAssistant, '{"prompt":"a","completion":"b"}\n{"messages":[{"role":"user","content":"hi"}]}\n');
    assertUserError(runAttn(['sft', '--init', base, '--data', noAssistant, '--out', join(tmp, 'x')], tmp), /row 2 has no assistant turn/);
    const badRole = join(tmp, 'bad-role.jsonl');
    writeFileSync(badRole, '{"messages":[{"role":"narrator","content":"hi"},{"role":"assistant","content":"x"}]}\n');
    assertUserError(runAttn(['sft', '--init', base, '--data', badRole, '--out', join(tmp, 'x')], tmp), /row 1: message 1 has unknown role "narrator"/);
    assertUserError(runAttn(['sft', '--init', base, '--data', data, '--out', join(tmp, 'x'), '--lora-r', '2', '--lora-targets', 'q_proj'], tmp), /LoRA target "q_proj" names no linear layer/);
  });
});
