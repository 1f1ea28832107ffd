/// <reference lib="webworker" />
/**
 * The training worker: all model work happens here, so the page stays responsive.
 * Training runs in slices of about 50 ms; between slices the worker yields to its
 * event loop, so pause, generate and attention requests are handled while it trains.
 */
import type { FromWorker, ToWorker } from './protocol.js';
import { Session } from './lib/session.js';
import { inspectDecoder } from '../src/eval/inspect/inspect_decoder.js';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { openWebGpu } from '../src/backend/webgpu/index.js';

declare const self: DedicatedWorkerGlobalScope;

/**
 * Where the models compute, decided once: WebGPU when the browser offers an
 * adapter (training steps then run on the GPU), else the js backend. The
 * page shows the answer next to the model's size.
 */
const backendReady: Promise<string> = (async () => {
  // The page's info line is short: "js" when there is no WebGPU (no navigator.gpu, or no adapter).
  if (!(self.navigator as { gpu?: unknown }).gpu) return 'js';
  try {
    const { ctx, backend } = await openWebGpu();
    registerBackend(backend);
    setBackend('webgpu');
    return `webgpu (${ctx.adapterName})`;
  } catch {
    return 'js';
  }
})();

const EVAL_EVERY = 25;
let session: Session | null = null;
let running = false;
let generation = 0; // bumps to cancel a generation in flight
const post = (m: FromWorker, transfer: Transferable[] = []): void => self.postMessage(m, transfer);

async function ready(s: Session, trainable: boolean, note?: string): Promise<void> {
  const c = s.config;
  post({
    type: 'ready',
    params: s.model.numParameters(),
    vocabSize: s.tokenizer.vocabSize,
    config: { n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, block_size: c.block_size, vocab_size: c.vocab_size },
    trainable,
    backend: await backendReady,
    ...(note ? { note } : {}),
  });
  const e = trainable ? await s.onHost(() => s.evaluate()) : null;
  if (e) post({ type: 'eval', step: s.step, train: e.train, val: e.val });
}

function setRunning(r: boolean): void {
  running = r;
  post({ type: 'running', running: r });
}

async function trainSlice(): Promise<void> {
  if (!running || !session) return;
  const s = session;
  const t0 = performance.now();
  let tokens = 0;
  let last = 0;
  try {
    do {
      const r = await s.trainStepAsync(); // on WebGPU, queued on the GPU; one read of the loss
      if (s !== session) return; // reset while the step ran
      tokens += r.tokens;
      last = r.loss;
      if (!Number.isFinite(last)) {
        setRunning(false);
        post({ type: 'error', message: `the loss became ${last} at step ${s.step}; lower the learning rate and reset` });
        return;
      }
      if (s.step % EVAL_EVERY === 0) break;
    } while (performance.now() - t0 < 50);
    const seconds = (performance.now() - t0) / 1000;
    post({ type: 'step', step: s.step, loss: last, tokensPerSec: tokens / seconds });
    if (s.step % EVAL_EVERY === 0) {
      const e = await s.onHost(() => s.evaluate());
      post({ type: 'eval', step: s.step, train: e.train, val: e.val });
    }
  } catch (e) {
    setRunning(false);
    post({ type: 'error', message: (e as Error).message });
    return;
  }
  setTimeout(() => void trainSlice(), 0);
}

function generate(prompt: string, maxNewTokens: number, temperature: number, topK: number): void {
  const s = session!;
  const mine = ++generation;
  const ids = Array.from(s.encode(prompt));
  let index = 0;
  const next = async (): Promise<void> => {
    if (mine !== generation) return post({ type: 'generated', stopped: true });
    if (index >= maxNewTokens) return post({ type: 'generated', stopped: false });
    try {
      const t = await s.onHost(() => s.nextToken(Int32Array.from(ids), temperature, topK));
      ids.push(t.id);
      post({ type: 'token', index: index++, ...t });
      setTimeout(() => void next(), 15); // slow enough to watch, and lets other messages in
    } catch (e) {
      post({ type: 'error', message: (e as Error).message });
      post({ type: 'generated', stopped: true });
    }
  };
  void next();
}

self.onmessage = async (ev: MessageEvent<ToWorker>): Promise<void> => {
  const m = ev.data;
  try {
    await backendReady; // the first message waits for the GPU to open; later ones keep their order
    switch (m.type) {
      case 'init':
        setRunning(false);
        generation++;
        session = Session.forText(m.text, m.sizes, m.train);
        await ready(session, true);
        break;
      case 'load': {
        setRunning(false);
        generation++;
        session = Session.fromFiles(m.files);
        let note: string | undefined;
        try {
          session.setText(m.text);
        } catch (e) {
          session.data = null;
          note = `cannot train the loaded model on this text: ${(e as Error).message}`;
        }
        await ready(session, session.data !== null, note);
        break;
      }
      case 'start':
        if (!session?.data) throw new Error('nothing to train: reset with a text first');
        if (!running) {
          setRunning(true);
          setTimeout(() => void trainSlice(), 0);
        }
        break;
      case 'pause':
        setRunning(false);
        break;
      case 'generate':
        if (!session) throw new Error('no model yet');
        generate(m.prompt, m.maxNewTokens, m.temperature, m.topK);
        break;
      case 'stopGenerate':
        generation++;
        break;
      case 'attention': {
        if (!session) throw new Error('no model yet');
        const s = session;
        const maps = await s.onHost(() => s.attention(s.encode(m.prompt)));
        post({ type: 'attention', ...maps }, [maps.weights.buffer]);
        break;
      }
      case 'inspect': {
        if (!session) throw new Error('no model yet');
        // Few, short windows: the page waits for it between training steps.
        const s = session;
        post({ type: 'inspect', report: await s.onHost(() => inspectDecoder(s.model, s.tokenizer, m.text, { windows: 8, length: 64 })) });
        break;
      }
      case 'save': {
        if (!session) throw new Error('no model yet');
        const s = session;
        post({ type: 'files', files: await s.onHost(() => s.toFiles()) });
        break;
      }
    }
  } catch (e) {
    post({ type: 'error', message: (e as Error).message });
  }
};
