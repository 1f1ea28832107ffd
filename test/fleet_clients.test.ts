import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readStream } from '../src/bench/fleet_clients.js';

/** An SSE body cut into arbitrary byte chunks, as the network delivers it. */
function body(text: string, cuts: number[]): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    pieces.push(bytes.slice(at, c));
    at = c;
  }
  return new ReadableStream({
    start(controller) {
      for (const p of pieces) controller.enqueue(p);
      controller.close();
    },
  });
}

const token = (t: string) => `data: ${JSON.stringify({ choices: [{ text: t, finish_reason: null }] })}\n\n`;
const last = `data: ${JSON.stringify({ choices: [{ text: '', finish_reason: 'length' }] })}\n\n`;

describe('the fleet bench clients count streamed tokens as they arrive', () => {
  it('counts every token of a whole stream, whatever the chunking', async () => {
    const text = token('a') + token('é') + token('c') + last + 'data: [DONE]\n\n';
    for (const cuts of [[], [1, 2, 3], [7, 40, 41, 90], Array.from({ length: text.length - 1 }, (_, i) => i + 1)]) {
      let n = 0;
      await readStream(body(text, cuts), () => n++);
      assert.equal(n, 3, `cuts ${cuts.length}`);
    }
  });

  it('a stream cut part-way keeps the tokens that arrived and fails', async () => {
    let n = 0;
    await assert.rejects(readStream(body(token('a') + token('b') + 'data: {"cho', [5]), () => n++), /without \[DONE\]/);
    assert.equal(n, 2);
  });

  it('an error event fails the request', async () => {
    let n = 0;
    const err = `data: ${JSON.stringify({ error: { message: 'replica overloaded' } })}\n\n`;
    await assert.rejects(readStream(body(token('a') + err, []), () => n++), /replica overloaded/);
    assert.equal(n, 1);
  });
});
