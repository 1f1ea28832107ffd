import { join } from 'node:path';

import { generate } from '../generate/engine.js';
import { transpose2d, isConv1DWeight } from '../io/hf_gpt2.js';
import { UserError } from '../util/errors.js';
import { loadModel } from '../io/model_dir.js';
import { readSafetensors, type TensorEntry } from '../io/safetensors.js';
import { AdamW } from '../optim/adamw.js';
import { backward, noGrad } from '../tensor/autograd.js';
import { backend } from '../backend/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import { moveToBackend } from '../nn/placement.js';
import { readStorage, toBackend, viewStorage } from '../tensor/tensor.js';


/** Tolerances from shared/reference/README.md. */
export const TOLERANCE = { logits: 1e-4, loss: 1e-4, gradAbs: 1e-5, gradRel: 1e-3 };

export interface GroupResult {
  group: string;
  /** Worst absolute error, and the tensor where it occurred. */
  worstAbs: number;
  worstAt: string;
  pass: boolean;
}

export interface ReferenceReport {
  groups: GroupResult[];
  pass: boolean;
}

export function toInt32(t: TensorEntry | undefined, name: string): Int32Array {
  if (!t) throw new UserError(`expected.safetensors has no ${name}`);
  return Int32Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

export function floats(t: TensorEntry | undefined, name: string): Float32Array {
  if (!t || !(t.data instanceof Float32Array)) throw new UserError(`expected.safetensors has no float tensor ${name}`);
  return t.data;
}

/** Worst error of `got` against `want`; an element passes within abs OR rel tolerance. */
export function compare(got: Float32Array, want: Float32Array, abs: number, rel: number): { worst: number; pass: boolean } {
  if (got.length !== want.length) return { worst: Infinity, pass: false };
  let worst = 0;
  let pass = true;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    if (!(e <= worst)) worst = e; // also catches NaN
    if (!(e <= abs || e <= rel * Math.abs(want[i]!))) pass = false;
  }
  return { worst, pass };
}

/** add(group, tensor, comparison): keep each group's worst error and where it was; a group passes if all its tensors do. */
export function groupAdder(groups: GroupResult[]): (group: string, at: string, r: { worst: number; pass: boolean }) => void {
  return (group, at, r) => {
    const g = groups.find((x) => x.group === group);
    if (!g) groups.push({ group, worstAbs: r.worst, worstAt: at, pass: r.pass });
    else {
      if (!(r.worst <= g.worstAbs)) {
        g.worstAbs = r.worst;
        g.worstAt = at;
      }
      g.pass &&= r.pass;
    }
  };
}

/**
 * Check attn against PyTorch's numbers for a Hugging Face GPT-2 or
 * Llama-family directory (whatever loadModel reads; a Llama names its
 * parameters as the checkpoint does, so only GPT-2's Conv1D weights need
 * re-laying out):
 * logits and loss of a forward pass, every gradient, one AdamW step, and a
 * greedy continuation (file format: shared/reference/README.md).
 *
 * On any backend: on a device backend (webgpu) the weights are uploaded,
 * everything runs there, and each compared tensor is read back once.
 */
export async function runReferenceCheck(dir: string): Promise<ReferenceReport> {
  const { model } = loadModel(dir);
  moveToBackend(model);
  const expected = readSafetensors(join(dir, 'expected.safetensors')).tensors;
  const ids = toInt32(expected.get('input_ids'), 'input_ids');
  const targets = toInt32(expected.get('targets'), 'targets');
  const [B, T] = expected.get('input_ids')!.shape as [number, number];
  const groups: GroupResult[] = [];
  const add = groupAdder(groups);

  // Forward and loss, in training mode as PyTorch computed the gradients (dropout is 0).
  model.train();
  const { logits, loss } = model.forward(ids, [B, T], targets);
  add('logits', 'logits', compare(await logits.read(), floats(expected.get('logits'), 'logits'), TOLERANCE.logits, 0));
  add('loss', 'loss', compare(await loss!.read(), floats(expected.get('loss'), 'loss'), TOLERANCE.loss, 0));

  // Gradients of every weight (the reference names them in Hugging Face layout).
  backward(loss!);
  const params = new Map(model.namedParameters());
  const hfLayout = (name: string, data: Float32Array, shape: number[]): Float32Array =>
    isConv1DWeight(name) ? transpose2d(data, shape[0]!, shape[1]!) : data;
  const paramOf = (key: string, prefix: string) => {
    const name = key.slice(prefix.length).replace(/^transformer\./, '');
    const p = params.get(name);
    if (!p) throw new UserError(`expected.safetensors has ${key} but the model has no parameter ${name}`);
    return { name, p };
  };
  for (const [key, t] of expected) {
    if (!key.startsWith('grad.')) continue;
    const { name, p } = paramOf(key, 'grad.');
    add('gradients', name, compare(hfLayout(name, await readStorage(p.ensureGradStorage()), p.shape), floats(t, key), TOLERANCE.gradAbs, TOLERANCE.gradRel));
  }

  // One AdamW step "from these gradients" (the reference's own): this checks the
  // optimizer alone. Stepping from our gradients instead would amplify float
  // noise where the true gradient is 0 (the key biases: softmax ignores a
  // constant shift), because Adam divides the gradient by its own magnitude.
  for (const [key, t] of expected) {
    if (!key.startsWith('grad.')) continue;
    const { name, p } = paramOf(key, 'grad.');
    const g = floats(t, key);
    p.grad = toBackend(isConv1DWeight(name) ? transpose2d(g, p.shape[1]!, p.shape[0]!) : Float32Array.from(g));
  }
  new AdamW([...params], { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }).update();
  for (const [key, t] of expected) {
    if (!key.startsWith('after.')) continue;
    const { name, p } = paramOf(key, 'after.');
    add('adamw', name, compare(hfLayout(name, await p.read(), p.shape), floats(t, key), TOLERANCE.gradAbs, TOLERANCE.gradRel));
  }

  // Greedy continuation, from the weights as loaded (reload: the step above changed them).
  const fresh = loadModel(dir).model;
  moveToBackend(fresh);
  const prompt = toInt32(expected.get('greedy.prompt'), 'greedy.prompt');
  const want = toInt32(expected.get('greedy.ids'), 'greedy.ids');
  const got = backend().device ? await greedyByFullPasses(fresh, prompt, want.length) : Int32Array.from(generate(fresh, prompt, { maxNewTokens: want.length, greedy: true }));
  const mismatches = got.reduce((n, id, i) => n + (id === want[i] ? 0 : 1), 0);
  groups.push({ group: 'greedy', worstAbs: mismatches, worstAt: `${mismatches} of ${want.length} ids differ`, pass: mismatches === 0 });
  return { groups, pass: groups.every((g) => g.pass) };
}

/**
 * Greedy decoding on a device backend without a KV cache: one full forward
 * pass per new token, reading back only the last position's logits row. (The
 * cached generator needs attentionCached, which this backend may lack; the
 * ids are the same either way.)
 */
async function greedyByFullPasses(model: CausalLM, prompt: Int32Array, n: number): Promise<Int32Array> {
  model.eval();
  const ids = Array.from(prompt);
  const out = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const window = Int32Array.from(ids.slice(-model.config.block_size));
    const logits = noGrad(() => model.forward(window, [1, window.length]).logits);
    const V = logits.shape.at(-1)!;
    const row = await readStorage(viewStorage(logits.storage, (window.length - 1) * V, V));
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
    out[k] = best;
    ids.push(best);
  }
  return out;
}
