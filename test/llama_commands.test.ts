import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChatTemplate } from '../src/chat/template.js';
import { runQuantize } from '../src/cli/quantize.js';
import { loadModel } from '../src/io/model_dir.js';
import { Llama } from '../src/models/llama.js';
import { isQuantized } from '../src/nn/quantized_linear.js';
import { loadServedModels } from '../src/serve/served_model.js';
import type { AttnServer } from '../src/serve/server.js';
import { startServer } from '../src/serve/server.js';
import { noGrad } from '../src/tensor/autograd.js';
import { HFTokenizer } from '../src/tokenizers/hf/pipeline.js';
import { assertClose, assertUserError, runAttn } from './helpers.js';
import { CHATML_TEMPLATE, chatTokenizerFiles, scriptedLlama, tinyLlama, writeHFLlamaDir } from './llama_fixture.js';
import { realTokenizerDir, REAL_TOKENIZER_PACKAGES } from './real_tokenizers.js';
import { refereesOrSkip } from './referees.js';
import { postJson, silentLogger } from './serve_fixture.js';

const work = mkdtempSync(join(tmpdir(), 'attn-llama-commands-'));
after(() => rmSync(work, { recursive: true, force: true }));
const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');
const attn = (args: string[]) => runAttn(args, work);
const chatCli = (args: string[], input: string) => {
  const r = spawnSync(process.execPath, [CLI, 'chat', ...args], { input, encoding: 'utf8', cwd: work });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
};

const scripted = join(work, 'scripted');
writeHFLlamaDir(scripted, scriptedLlama('Hi!'), chatTokenizerFiles());

const ids = Int32Array.of(40, 50, 60, 70, 96, 10);
const logitsOf = (dir: string) => noGrad(() => loadModel(dir).model.forward(ids, [1, ids.length]).logits.data);

describe('attn serve with a Hugging Face Llama directory', () => {
  let server: AttnServer;
  before(async () => {
    server = await startServer({ models: [`scripted=${scripted}`], port: 0, logger: silentLogger() });
  });
  after(() => server?.close());

  it('chat completions render the model\'s template and stop at its end-of-turn token', async () => {
    const messages = [{ role: 'user', content: 'Hello' }];
    const r = await postJson(`${server.url}/v1/chat/completions`, { model: 'scripted', messages, temperature: 0, max_tokens: 20 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.choices[0].message.content, 'Hi!');
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    const tokenizer = loadModel(scripted).tokenizer!;
    const prompt = new ChatTemplate(CHATML_TEMPLATE, {}).render(messages, { addGenerationPrompt: true });
    assert.ok(prompt.startsWith('<|im_start|>system\nYou are helpful.'), 'the template\'s default system message');
    assert.equal(r.json.usage.prompt_tokens, tokenizer.encode(prompt, { allowedSpecial: 'all' }).length);
    assert.equal(r.json.usage.completion_tokens, 3);
  });

  it('completions stop at the tokenizer\'s eos_token', async () => {
    const r = await postJson(`${server.url}/v1/completions`, { model: 'scripted', prompt: 'Say\n', temperature: 0, max_tokens: 20 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.choices[0].text, 'Hi!');
    assert.equal(r.json.choices[0].finish_reason, 'stop');
  });
});

describe('attn serve with a real tokenizer (Qwen3\'s tokenizer.json and chat template)', { skip: refereesOrSkip(REAL_TOKENIZER_PACKAGES) }, () => {
  it('a tiny random Llama with Qwen3\'s tokenizer answers /v1/chat/completions in Qwen\'s format', async () => {
    const dir = join(work, 'qwen-tok');
    const tokDir = realTokenizerDir('qwen3');
    const vocab = 151669; // Qwen3's tokenizer: 151 643 tokens and 26 added ones
    writeHFLlamaDir(dir, tinyLlama({ n_layer: 1, n_embd: 16, n_head: 2, n_kv_head: 1, head_dim: 8, intermediate_size: 32, vocab_size: vocab, block_size: 256 }));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(tokDir, f), join(dir, f));
    const served = loadServedModels([`qwen=${dir}`], { maxBatch: 1, maxQueue: 1 }).models.get('qwen')!;
    const tokenizer = served.tokenizer;
    assert.ok(tokenizer instanceof HFTokenizer);
    assert.deepEqual(served.chatStopTokens, [tokenizer.tokenToId('<|im_end|>')]);
    assert.deepEqual(served.stopTokens, [tokenizer.tokenToId('<|endoftext|>'), tokenizer.tokenToId('<|im_end|>')]);
    const server = await startServer({ models: [{ name: 'qwen', model: served.model, tokenizer }], port: 0, logger: silentLogger() });
    try {
      const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Bonjour, ça va ?' }];
      const r = await postJson(`${server.url}/v1/chat/completions`, { model: 'qwen', messages, max_tokens: 3, seed: 1 });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const config = JSON.parse(readFileSync(join(tokDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
      const text = ChatTemplate.fromTokenizerConfig(config).render(messages, { addGenerationPrompt: true });
      assert.match(text, /^<\|im_start\|>system\nYou are terse\.<\|im_end\|>\n<\|im_start\|>user\nBonjour, ça va \?<\|im_end\|>\n<\|im_start\|>assistant\n$/);
      assert.equal(r.json.usage.prompt_tokens, tokenizer.encode(text, { allowedSpecial: 'all' }).length);
    } finally {
      await server.close();
    }
  });
});

describe('attn quantize with a Llama-family model', () => {
  for (const tied of [true, false]) {
    it(`int8 copy (${tied ? 'tied' : 'untied'} head): close logits, tokenizer and chat template kept, loads and samples`, () => {
      const src = join(work, `q-src-${tied}`);
      writeHFLlamaDir(src, tinyLlama({ tie_word_embeddings: tied }), chatTokenizerFiles());
      const out = join(work, `q-out-${tied}`);
      runQuantize({ model: src, out });
      const q = loadModel(out);
      assert.ok(q.model instanceof Llama && isQuantized(q.model));
      assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).model_type, 'attn-llama');
      assert.equal(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).chat_template, CHATML_TEMPLATE);
      assert.ok(q.tokenizer instanceof HFTokenizer);
      const want = logitsOf(src);
      const got = logitsOf(out);
      const scale = Math.max(...want.map(Math.abs));
      assertClose(got, want, 0.05 * scale, 'int8 vs fp32');
      assert.notDeepEqual(got, want);
      const s = attn(['sample', '--model', out, '--prompt', 'abc', '--max-new-tokens', '4', '--temperature', '0']);
      assert.equal(s.code, 0, s.stderr);
      assert.ok(s.stdout.startsWith('abc'));
      assertUserError(attn(['quantize', '--model', out, '--out', join(work, 'q-twice')]), /already quantized/);
    });
  }

  it('the quantized scripted model still chats in its template', () => {
    const out = join(work, 'q-scripted');
    runQuantize({ model: scripted, out });
    const r = chatCli(['--model', out, '--temperature', '0', '--max-tokens', '10'], 'Hello\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Hi!\n');
  });
});

describe('attn train --init with a Llama-family model', () => {
  it('fine-tunes it as a Llama, saved as attn-llama with its tokenizer files; --resume continues; eval and chat use it', () => {
    const src = join(work, 'ft-src');
    writeHFLlamaDir(src, tinyLlama({ tie_word_embeddings: false }), chatTokenizerFiles());
    writeFileSync(join(work, 'ft.txt'), 'The quick brown fox jumps over the lazy dog. '.repeat(40));
    const out = join(work, 'ft-out');
    const r = attn(['train', '--init', src, '--data', 'ft.txt', '--out', out, '--max-iters', '3', '--block-size', '16', '--batch-size', '2', '--eval-iters', '1', '--warmup-iters', '1', '--arch', 'gpt']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /--init takes the model's family, sizes and tokenizer .*ignoring --arch/);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.model_type, 'attn-llama');
    assert.equal(config.n_kv_head, 2);
    assert.equal(config.tie_word_embeddings, false);
    assert.equal(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).chat_template, CHATML_TEMPLATE);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf8')));
    const before = loadModel(src).model as Llama;
    const tuned = loadModel(out).model as Llama;
    const a = before.model.layers[0]!.mlp.namedParameters()[0]![1].data;
    const b = tuned.model.layers[0]!.mlp.namedParameters()[0]![1].data;
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    assert.ok(d > 0 && d < 0.01, `three small steps from the loaded weights: max change ${d}`);
    const resumed = attn(['train', '--resume', out, '--data', 'ft.txt', '--max-iters', '4']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(JSON.parse(readFileSync(join(out, 'trainer.json'), 'utf8')).step, 4);
    const evaluated = attn(['eval', '--model', out, '--data', 'ft.txt', '--json']);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const scored = JSON.parse(evaluated.stdout) as { loss: number; tokens: number };
    assert.ok(Number.isFinite(scored.loss) && scored.loss > 0 && scored.tokens > 1000, evaluated.stdout);
    const chat = chatCli(['--model', out, '--max-tokens', '3'], 'Hello\n');
    assert.equal(chat.code, 0, chat.stderr);
    assert.doesNotMatch(chat.stderr, /no chat template/);
  });
});
