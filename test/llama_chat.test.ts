import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import type { ChatMessage } from '../src/chat/messages.js';
import { ChatTemplate } from '../src/chat/template.js';
import { generateText } from '../src/generate/stream.js';
import { escapeLine, runChat } from '../src/cli/chat.js';
import { ChatSession } from '../src/generate/chat_session.js';
import { loadModel } from '../src/io/model_dir.js';
import { UserError } from '../src/util/errors.js';
import { assertUserError, runAttn } from './helpers.js';
import { CHARS, CHATML_TEMPLATE, chatTokenizerFiles, END_OF_TEXT, IM_END, scriptedLlama, tinyLlama, writeHFLlamaDir } from './llama_fixture.js';

const work = mkdtempSync(join(tmpdir(), 'attn-llama-chat-'));
after(() => rmSync(work, { recursive: true, force: true }));
const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');

/** A Hugging Face Llama directory whose model always answers `reply` (greedy), with the ChatML tokenizer. */
function scriptedDir(name: string, reply = 'Hi!', blockSize = 128, template: string | null = CHATML_TEMPLATE): string {
  const dir = join(work, name);
  writeHFLlamaDir(dir, scriptedLlama(reply, blockSize), chatTokenizerFiles(template));
  return dir;
}

async function collect(gen: AsyncGenerator<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const piece of gen) out.push(piece);
  return out;
}

/** `attn chat` with lines piped to its stdin, as a script or another program would. */
function chatCli(args: string[], input: string) {
  const r = spawnSync(process.execPath, [CLI, 'chat', ...args], { input, encoding: 'utf8', cwd: work });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('ChatSession: a conversation in the model\'s chat template', () => {
  const dir = scriptedDir('scripted');
  const { model, tokenizer } = loadModel(dir);

  it('streams the reply, stops at the end-of-turn token and keeps the history', async () => {
    const session = new ChatSession(model, tokenizer!, { maxTokens: 10, temperature: 0, system: 'Be brief.' });
    assert.deepEqual([...session.stopTokens].sort((a, b) => a - b), [IM_END, END_OF_TEXT]); // the template's end of turn (also eos_token), the end of text
    const pieces = await collect(session.send('Hello'));
    assert.deepEqual(pieces, ['H', 'i', '!'], 'one piece per token, nothing after <|im_end|>');
    assert.deepEqual(session.messages, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: 'Hi!' },
    ]);
    await collect(session.send('Again'));
    assert.equal(session.messages.length, 5);
    session.reset();
    assert.deepEqual(session.messages, [{ role: 'system', content: 'Be brief.' }]);
  });

  it('keeps the KV cache between turns: only the new tokens run, and the replies are those of a fresh run', async () => {
    const random = tinyLlama({ block_size: 256 }, 11);
    const opts = { maxTokens: 6, temperature: 0.9, topP: 0.95, seed: 3, system: 'Be brief.' };
    const session = new ChatSession(random, tokenizer!, opts);
    const history: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }];
    for (const [turn, text] of ['Hello', 'Tell me a story', 'Why?'].entries()) {
      const got = (await collect(session.send(text))).join('');
      history.push({ role: 'user', content: text });
      const prompt = session.template.render(history, { addGenerationPrompt: true });
      const [want] = await generateText(random, tokenizer!, prompt, { maxNewTokens: 6, temperature: 0.9, topP: 0.95, seed: 3 + turn, stopTokens: session.stopTokens, stop: session.template.stopTokens });
      assert.equal(got, want, `turn ${turn}`);
      history.push({ role: 'assistant', content: got });
      if (turn > 0) assert.ok(session.reusedTokens > 20, `turn ${turn} reused ${session.reusedTokens} cached tokens`);
    }
    assert.deepEqual(session.messages, history);
  });

  it('without an end-of-turn token the reply ends at --max-tokens', async () => {
    const session = new ChatSession(model, tokenizer!, { maxTokens: 2, temperature: 0 });
    assert.equal((await collect(session.send('Hello'))).join(''), 'Hi');
  });

  it('drops the oldest turns, with a warning, when the conversation outgrows the context', async () => {
    const small = loadModel(scriptedDir('scripted-64', 'Hi!', 96)).model;
    const warnings: string[] = [];
    const session = new ChatSession(small, tokenizer!, { maxTokens: 8, temperature: 0, onWarning: (w) => warnings.push(w) });
    const prompt = () => tokenizer!.encode(session.template.render([...session.messages, { role: 'user', content: 'Tell me more' }], { addGenerationPrompt: true }), { allowedSpecial: 'all' }).length;
    let turns = 0;
    while (warnings.length === 0 && turns < 10) {
      const fits = prompt() + 8 <= 96;
      assert.equal((await collect(session.send('Tell me more'))).join(''), 'Hi!');
      turns++;
      assert.equal(warnings.length === 0, fits, `turn ${turns}: a warning exactly when the whole conversation would not fit`);
    }
    assert.match(warnings[0]!, /no longer fits the context of 96 tokens: dropped the oldest 2 messages/);
    assert.equal(session.messages[0]!.role, 'user', 'whole exchanges are dropped, so roles still alternate');
    assert.ok(prompt() <= 96);
    // A single message longer than the context is refused, and the conversation is kept as it was.
    const before = [...session.messages];
    await assert.rejects(collect(session.send('x'.repeat(200))), (e: unknown) => e instanceof UserError && /does not fit the model's context of 96 tokens/.test(e.message));
    assert.deepEqual(session.messages, before);
    // Asking for replies longer than half the context keeps half of it free, not all of it (the history would never fit).
    const greedy: string[] = [];
    const chatml = new ChatTemplate(undefined, {}); // ChatML without a default system message
    const long = new ChatSession(small, tokenizer!, { maxTokens: 500, temperature: 0, template: chatml, onWarning: (w) => greedy.push(w) });
    assert.match(greedy[0]!, /max tokens 500 is more than half the model's context of 96: older turns are dropped to keep 48 tokens free/);
    await collect(long.send('Hi'));
    await collect(long.send('Hi'));
    assert.equal(long.messages.length, 4, 'two short exchanges fit in 96 − 48 tokens');
    assert.equal(greedy.length, 1, greedy.join('\n'));
  });

  it('a template that fails to render is a UserError with the template\'s own message', async () => {
    const failing = ChatTemplate.fromTokenizerConfig({ chat_template: "{{ raise_exception('System messages are not supported') }}" });
    const session = new ChatSession(model, tokenizer!, { maxTokens: 4, template: failing });
    await assert.rejects(collect(session.send('Hello')), /chat template failed to render: System messages are not supported/);
    assert.deepEqual(session.messages, []);
  });
});

describe('attn chat', () => {
  it('reads messages from a pipe, streams each reply on its own line; /reset and /exit', () => {
    const dir = scriptedDir('cli', 'Yo!');
    const r = chatCli(['--model', dir, '--temperature', '0', '--max-tokens', '10'], 'Hello\nHow are you?\n/reset\n\nOne more\n/exit\nnever sent\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Yo!\nYo!\nYo!\n');
    assert.match(r.stderr, /conversation cleared/);
  });

  it('Ctrl-D (the end of the input) ends the chat; the conversation is kept between lines', async () => {
    const dir = scriptedDir('lib', 'Ok');
    const out: string[] = [];
    const notes: string[] = [];
    await runChat({ model: dir, temperature: 0, maxTokens: 5, seed: 1, system: 'S' }, { input: Readable.from(['a\nb\n']), write: (s) => out.push(s), note: (s) => notes.push(s) });
    assert.equal(out.join(''), 'Ok\nOk\n');
    assert.equal(notes.length, 0, notes.join(''));
  });

  it('a model without a chat template gets ChatML, with a note', () => {
    const dir = scriptedDir('no-template', 'Hm', 128, null);
    const r = chatCli(['--model', dir, '--temperature', '0'], 'Hello\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Hm\n');
    assert.match(r.stderr, /has no chat template .*using ChatML/);
  });

  it('bad input: one clear line and a non-zero exit', () => {
    const noTokenizer = join(work, 'no-tokenizer');
    writeHFLlamaDir(noTokenizer, scriptedLlama('x'));
    assertUserError(chatCli(['--model', noTokenizer], 'Hello\n'), /has no tokenizer .*attn chat needs one/);
    const failing = scriptedDir('failing', 'x', 128, "{% if messages[0]['role'] == 'user' %}{{ raise_exception('Conversations must start with a system message') }}{% endif %}" + CHATML_TEMPLATE);
    assertUserError(chatCli(['--model', failing], 'Hello\n'), /chat template failed to render: Conversations must start with a system message/);
    const r = chatCli(['--model', failing, '--system', 'S', '--max-tokens', '2', '--temperature', '0'], 'Hello\n');
    assert.equal(r.code, 0, r.stderr);
    assertUserError(chatCli(['--model', join(work, 'absent')], ''), /does not exist/);
    const phi = scriptedDir('phi', 'x');
    const cfg = JSON.parse(readFileSync(join(phi, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(phi, 'config.json'), JSON.stringify({ ...cfg, model_type: 'phi3', architectures: ['Phi3ForCausalLM'] }));
    assertUserError(chatCli(['--model', phi], 'Hello\n'), /architecture "phi3" is not supported \(attn loads .*LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM/);
    assertUserError(chatCli(['--model', noTokenizer, '--top-p', '2'], ''), /--top-p must be in \(0, 1\]/);
    const help = runAttn(['chat', '--help'], work);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--system <text>[\s\S]*\/reset/);
  });

  it('a message longer than the context is refused with one line and the chat goes on (an empty reply line in a pipe)', () => {
    const dir = scriptedDir('short-context', 'Ok', 64);
    const r = chatCli(['--model', dir, '--temperature', '0', '--max-tokens', '4'], `${'x'.repeat(100)}\nhi\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '\nOk\n');
    assert.match(r.stderr, /^error: the message does not fit the model's context of 64 tokens .*send a shorter one$/m);
    assert.doesNotMatch(r.stderr, /attn: error|at .*\.js/);
  });

  it('in a pipe each reply is one line: newlines written as \\n, backslashes as \\\\', () => {
    assert.equal(escapeLine('a\\b\nc\r'), 'a\\\\b\\nc\\r');
    // A model that answers "A\" then a newline, over and over: A → \ → newline → A …, cut by --max-tokens.
    const model = scriptedLlama('A\\');
    const C = model.config.n_embd;
    const head = (model.lm_head as { weight: { data: Float32Array } }).weight.data;
    const slash = CHARS.indexOf('\\');
    head[IM_END * C + slash] = 0;
    head[CHARS.indexOf('\n') * C + slash] = 1;
    const dir = join(work, 'multiline');
    writeHFLlamaDir(dir, model, chatTokenizerFiles());
    const r = chatCli(['--model', dir, '--temperature', '0', '--max-tokens', '7'], 'one\ntwo\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'A\\\\\\nA\\\\\\nA\n'.repeat(2));
    assert.match(runAttn(['chat', '--help'], work).stdout, /newline in it is written as \\n/);
  });

  it('a char tokenizer that cannot encode ChatML fails at startup with one line', () => {
    const text = join(work, 'plain.txt');
    writeFileSync(text, 'hello world, the cat sat on the mat. '.repeat(40));
    const model = join(work, 'char-gpt');
    const t = runAttn(['train', '--data', text, '--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--max-iters', '1', '--out', model], work);
    assert.equal(t.code, 0, t.stderr);
    const r = chatCli(['--model', model, '--max-tokens', '2'], 'hello\n');
    assertUserError(r, /tokenizer cannot encode its chat template \(ChatML's <\|im_start\|>.*character "<" is not in the tokenizer's vocabulary\); attn chat needs a model with a sub-word tokenizer/);
    assert.equal(r.stdout, '');
    assertUserError(chatCli(['--model', model, '--system', 'Ω'], 'hello\n'), /--system: character "Ω" is not in the tokenizer's vocabulary/);
  });
});
