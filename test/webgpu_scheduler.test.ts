import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { decodeAhead, setDecodeAhead } from '../src/generate/decode_ahead.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { moveToBackend } from '../src/nn/placement.js';
import { Scheduler } from '../src/serve/scheduler.js';
import { Sequence, type FinishReason, type SequenceParams } from '../src/serve/sequence.js';
import { Rng } from '../src/util/rng.js';
import { mostReadsInFlight, webgpuSkip } from './webgpu_helpers.js';

/*
 * The server's continuous batching on webgpu against js: greedy requests
 * that join, stop and are cancelled at different steps get the tokens js
 * gives them, whether each step waits for its read or greedy steps are
 * queued ahead of their reads (decodeAhead). Without a GPU, run on
 * SwiftShader; with no adapter the tests skip, unless ATTN_REQUIRE_WEBGPU=1.
 */

const skip = await webgpuSkip('WebGPU scheduler tests');
after(() => setBackend('js'));

const CONFIG = parseGPTConfig({ n_layer: 2, n_head: 4, n_embd: 32, block_size: 24, vocab_size: 41, bias: true, dropout: 0 });

/** Seed 1 with its matrices scaled 6×, so that greedy decoding wanders (a mistake in which token is fed back shows). */
function model(): GPT {
  const m = new GPT(CONFIG, new Rng(1)).eval();
  for (const p of m.parameters()) if (p.shape.length === 2) for (let i = 0; i < p.data.length; i++) p.data[i]! *= 6;
  return m;
}

interface Request {
  prompt: number[];
  maxTokens: number;
  stopTokens?: number[];
  /** Ended from outside (a stop string, a disconnect) after this many tokens. */
  cancelAfter?: number;
  /** Submitted once request 0 has this many tokens (joins a batch that is decoding). */
  joinAt?: number;
}

const greedy = (r: Request): SequenceParams => ({ maxTokens: r.maxTokens, seed: 1, temperature: 0, ...(r.stopTokens ? { stopTokens: r.stopTokens } : {}) });

/** Every request's tokens and finish reason, served together by one scheduler on the current backend. */
async function serve(m: GPT, requests: Request[], maxBatch = 4): Promise<Array<{ ids: number[]; reason: FinishReason }>> {
  const s = new Scheduler(m, { maxBatch, maxQueue: 16 });
  const out = requests.map(() => ({ ids: [] as number[], reason: null as FinishReason | null }));
  const ended: Array<Promise<void>> = [];
  const submit = (i: number): void => {
    const r = requests[i]!;
    let done!: () => void;
    ended.push(new Promise<void>((resolve) => (done = resolve)));
    const seq: Sequence = new Sequence(r.prompt, greedy(r), {
      onToken: (id) => {
        out[i]!.ids.push(id);
        if (out[i]!.ids.length === r.cancelAfter) seq.finish('cancelled');
        if (i === 0) requests.forEach((later, j) => later.joinAt === out[0]!.ids.length && submit(j));
      },
      onFinish: (reason) => {
        out[i]!.reason = reason;
        done();
      },
    });
    s.submit(seq);
  };
  requests.forEach((r, i) => r.joinAt === undefined && submit(i));
  while (ended.length < requests.length || out.some((o) => o.reason === null)) await Promise.all(ended);
  return out.map((o) => ({ ids: o.ids, reason: o.reason! }));
}

const REQUESTS: Request[] = [
  { prompt: [3, 1, 4], maxTokens: 14 },
  { prompt: [1, 5, 9, 2, 6, 5, 3], maxTokens: 9 },
  { prompt: [2, 7], maxTokens: 12, cancelAfter: 4 },
  { prompt: [8], maxTokens: 30 }, // stops at the context: block_size − prompt + 1 = 24 tokens
  { prompt: [6, 6, 6, 1], maxTokens: 6, joinAt: 3 },
  { prompt: [4, 2], maxTokens: 1, joinAt: 5 },
  { prompt: [9, 9], maxTokens: 8, joinAt: 5 }, // waits: the batch holds 4
];

describe('continuous batching on webgpu', { skip }, () => {
  it('greedy requests joining, stopping and cancelled: the tokens js gives, each step waiting or queued 1, 2 and 4 ahead', async () => {
    setBackend('js');
    const js = await serve(model(), REQUESTS);
    // A stop token one request meets part-way (its fourth token), in a second run.
    const stopAt = js[1]!.ids[3]!;
    const stopping = REQUESTS.map((r, i) => (i === 1 ? { ...r, stopTokens: [stopAt] } : r));
    const jsStopping = await serve(model(), stopping);
    assert.equal(jsStopping[1]!.reason, 'stop');
    assert.equal(js[2]!.reason, 'cancelled');
    assert.equal(js[3]!.reason, 'length');
    assert.equal(js[3]!.ids.length, 24 - 1 + 1, `stops at the context: ${js[3]!.ids.length}`);
    assert.ok(new Set(js.flatMap((r) => r.ids)).size > 6, `a test that can tell: ${JSON.stringify(js)}`);
    const was = decodeAhead();
    try {
      for (const depth of [0, 1, 2, 4]) {
        setDecodeAhead(depth);
        await selectBackendAsync('webgpu');
        try {
          for (const [requests, want] of [[REQUESTS, js], [stopping, jsStopping]] as const) {
            const m = model();
            moveToBackend(m);
            assert.deepEqual(await serve(m, requests.map((r) => ({ ...r }))), want, `depth ${depth}`);
          }
        } finally {
          setBackend('js');
        }
      }
    } finally {
      setDecodeAhead(was);
    }
  });

  it('queued ahead, the reads overlap: with depth 2, three are in flight at once; with 0, one at a time', async () => {
    const was = decodeAhead();
    await selectBackendAsync('webgpu');
    try {
      const m = model();
      moveToBackend(m);
      for (const depth of [0, 2]) {
        setDecodeAhead(depth);
        const most = await mostReadsInFlight(async () => {
          await serve(m, [{ prompt: [2, 7], maxTokens: 10 }, { prompt: [5], maxTokens: 10 }]);
        });
        assert.equal(most, depth + 1, `depth ${depth}`);
      }
    } finally {
      setDecodeAhead(was);
      setBackend('js');
    }
  });
});
