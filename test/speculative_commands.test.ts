import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { writeDirAtomic } from '../src/io/atomic.js';
import { modelFiles } from '../src/io/model_dir.js';
import { Scheduler } from '../src/serve/scheduler.js';
import { Sequence, type FinishReason } from '../src/serve/sequence.js';
import { startServer } from '../src/serve/server.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { UserError } from '../src/util/errors.js';
import { assertUserError, runAttn } from './helpers.js';
import { nearDraft, postJson, silentLogger, tinyGPT, tinyModelDir, tinyTokenizer } from './serve_fixture.js';

/** Run sequences through a scheduler to the end; each one's ids and finish reason. */
async function runAll(s: Scheduler, prompts: number[][], params: { maxTokens: number; greedy?: boolean; temperature?: number; seed?: number; stopTokens?: number[] }): Promise<Array<{ ids: number[]; reason: FinishReason }>> {
  return Promise.all(prompts.map((p, i) => new Promise<{ ids: number[]; reason: FinishReason }>((resolve) => {
    const ids: number[] = [];
    s.submit(new Sequence(p, { seed: (params.seed ?? 0) + i, ...params }, { onToken: (id) => ids.push(id), onFinish: (reason) => resolve({ ids, reason }) }));
  })));
}

describe('serving with a draft model (speculative decoding)', () => {
  const dirs: Array<() => void> = [];
  after(() => dirs.forEach((c) => c()));

  it('the scheduler emits the same greedy tokens, finish reasons and stop tokens as without a draft', async () => {
    const target = tinyGPT(3, 64);
    const prompts = [[40, 41, 42], [50], [60, 61, 62, 63, 64, 65, 66, 67, 68]];
    const plain = await runAll(new Scheduler(target, { maxBatch: 4, maxQueue: 8 }), prompts, { maxTokens: 30, greedy: true });
    let rounds = 0;
    const fast = new Scheduler(target, { maxBatch: 4, maxQueue: 8 }, { onSpeculative: (rows) => (rounds += rows) }, { model: nearDraft(target, 0.02), k: 4 });
    assert.deepEqual(await runAll(fast, prompts, { maxTokens: 30, greedy: true }), plain);
    assert.ok(rounds > 0 && rounds < 3 * 30, `${rounds} speculative rounds for 90 tokens`);
    // A stop token drafted in the middle of a round ends the sequence there, as it would alone.
    const stopAt = plain[0]!.ids[7]!;
    const stopped = await runAll(fast, [prompts[0]!], { maxTokens: 30, greedy: true, stopTokens: [stopAt] });
    assert.deepEqual(stopped[0], { ids: plain[0]!.ids.slice(0, plain[0]!.ids.indexOf(stopAt)), reason: 'stop' });
    // Up to the context's end: the cache fills, the reason is length, on the same token as alone.
    const long = Array.from({ length: 50 }, (_, i) => 32 + (i % 60));
    const [a] = await runAll(new Scheduler(target, { maxBatch: 1, maxQueue: 1 }), [long], { maxTokens: 40, greedy: true });
    const [b] = await runAll(fast, [long], { maxTokens: 40, greedy: true });
    assert.deepEqual(b, a);
  });

  it('attn serve loads the draft its config names, answers as the model alone, and counts acceptance in /metrics', async () => {
    const t = tinyModelDir('target', 3);
    dirs.push(t.cleanup);
    const draftDir = `${t.dir}-draft`;
    writeDirAtomic(draftDir, modelFiles(nearDraft(tinyGPT(3, 64), 0.02), tinyTokenizer()));
    const body = { model: 'target', prompt: 'Hello there', max_tokens: 24, temperature: 0 };
    const plainServer = await startServer({ models: [t.dir], port: 0, logger: silentLogger() });
    const plain = await postJson(`${plainServer.url}/v1/completions`, body);
    await plainServer.close();
    const config = JSON.parse(readFileSync(`${t.dir}/config.json`, 'utf8'));
    writeFileSync(`${t.dir}/config.json`, JSON.stringify({ ...config, draft: '../target-draft', draft_k: 3 }));
    const server = await startServer({ models: [t.dir], port: 0, logger: silentLogger() });
    try {
      const fast = await postJson(`${server.url}/v1/completions`, body);
      assert.equal(fast.status, 200);
      assert.equal(fast.json.choices[0].text, plain.json.choices[0].text);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name}\\{model="target"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
      assert.ok(value('attn_speculative_drafted_tokens_total') > 0, metrics.split('\n').filter((l) => l.includes('speculative')).join('\n'));
      assert.ok(value('attn_speculative_accepted_tokens_total') <= value('attn_speculative_drafted_tokens_total'));
      assert.equal(value('attn_speculative_emitted_tokens_total'), 24);
    } finally {
      await server.close();
    }
  });

  it('refuses to start with a draft of another vocabulary or tokenizer, naming the difference', async () => {
    const t = tinyModelDir('target', 3);
    dirs.push(t.cleanup);
    const config = JSON.parse(readFileSync(`${t.dir}/config.json`, 'utf8'));
    const bad = `${t.dir}-bad`;
    writeFileSync(`${t.dir}/config.json`, JSON.stringify({ ...config, draft: bad }));
    writeDirAtomic(bad, modelFiles(tinyGPT(4, 64, 97), new CharTokenizer([...'abcdefghij'])));
    await assert.rejects(startServer({ models: [t.dir], port: 0, logger: silentLogger() }), (e: Error) => e instanceof UserError && /draft .*scores 97 tokens but the target 96/.test(e.message));
    writeDirAtomic(bad, modelFiles(tinyGPT(4, 64, 96), new CharTokenizer([...Array.from({ length: 95 }, (_, i) => String.fromCharCode(33 + i)), '\n'].sort())));
    await assert.rejects(startServer({ models: [t.dir], port: 0, logger: silentLogger() }), (e: Error) => e instanceof UserError && /tokenizer differs from the target's: token \d+ is/.test(e.message));
  });
});

describe('attn sample --draft', () => {
  it('prints the model\'s own greedy text and a summary with the acceptance rate; refuses a draft with another tokenizer', () => {
    const t = tinyModelDir('target', 3);
    try {
      const draftDir = `${t.dir}-draft`;
      writeDirAtomic(draftDir, modelFiles(nearDraft(tinyGPT(3, 64), 0.02), tinyTokenizer()));
      const args = ['sample', '--model', t.dir, '--prompt', 'Hello', '--max-new-tokens', '30', '--greedy', '--backend', 'js'];
      const plain = runAttn(args, process.cwd());
      assert.equal(plain.code, 0, plain.stderr);
      const fast = runAttn([...args, '--draft', draftDir, '--draft-k', '3'], process.cwd());
      assert.equal(fast.code, 0, fast.stderr);
      assert.equal(fast.stdout, plain.stdout);
      assert.match(fast.stderr, /speculative decoding: 30 tokens in .*acceptance [\d.]+ % of \d+ drafted, [\d.]+ tokens per target pass/);
      const auto = runAttn([...args, '--draft', draftDir, '--draft-k', '6', '--draft-auto'], process.cwd());
      assert.equal(auto.code, 0, auto.stderr);
      assert.equal(auto.stdout, plain.stdout, 'an adaptive draft length changes nothing in greedy output');
      // Distillation from the command line: a 1-layer student of the target, with the target's tokenizer.
      const text = `${t.dir}-text.txt`;
      writeFileSync(text, 'Hello there, general. '.repeat(80));
      const student = `${t.dir}-student`;
      const trained = runAttn(['train', '--distill-from', t.dir, '--data', text, '--out', student, '--n-layer', '1', '--n-head', '2', '--n-embd', '32', '--block-size', '32', '--batch-size', '2', '--max-iters', '3', '--eval-interval', '3', '--eval-iters', '1', '--backend', 'js'], process.cwd());
      assert.equal(trained.code, 0, trained.stderr);
      const viaStudent = runAttn([...args, '--draft', student], process.cwd());
      assert.equal(viaStudent.code, 0, viaStudent.stderr);
      assert.equal(viaStudent.stdout, plain.stdout, 'the distilled student is a valid draft: same tokenizer and vocabulary');
      const other = `${t.dir}-other`;
      writeDirAtomic(other, modelFiles(tinyGPT(4, 64), new CharTokenizer([...Array.from({ length: 95 }, (_, i) => String.fromCharCode(33 + i)), '\n'].sort())));
      assertUserError(runAttn([...args, '--draft', other], process.cwd()), /--draft .*tokenizer differs from the target's: token 1 is "!" in the draft, " " in the target/);
    } finally {
      t.cleanup();
    }
  });
});
