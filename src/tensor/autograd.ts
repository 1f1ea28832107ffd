import type { Storage } from '../backend/storage.js';
import { Tensor, fillStorage, releaseStorage, toBackend, copyStorage, type GradFn } from './tensor.js';

let gradEnabled = true;

/** Whether new ops record how they were computed. Off during evaluation and sampling. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run f without building a graph: faster and uses less memory when no backward follows. */
export function noGrad<T>(f: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return f();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Wrap an op's result: attach the backward function only when some input
 * needs a gradient, so inference builds no graph at all.
 */
export function record(out: Tensor, inputs: Tensor[], name: string, backward: () => void): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = { inputs, backward, name } satisfies GradFn;
  }
  return out;
}

/**
 * Backpropagate from `root` (normally a scalar loss): visit every tensor that
 * contributed to it in reverse topological order, so a tensor's gradient is
 * complete before it is passed on to its inputs. Leaf tensors (parameters)
 * keep their accumulated .grad; the graph is released afterwards.
 */
export interface BackwardOptions {
  /**
   * Also recycle the forward pass's intermediate values (every computed
   * tensor's data). Only for callers that keep none of them afterwards — a
   * training step that has already read its loss.
   */
  freeActivations?: boolean;
}

export function backward(root: Tensor, seed?: Float32Array, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error('backward() on a tensor that does not require grad');
  const order = topologicalOrder(root);
  if (!seed && root.size !== 1) throw new Error(`backward() from a non-scalar tensor [${root.shape}] needs a seed gradient`);
  // d root / d root: the seed (1 for a scalar loss), where the backend keeps values.
  const g = root.ensureGradStorage();
  if (seed) {
    const values = toBackend(seed);
    copyStorage(values, 0, g, 0, seed.length);
    if (values !== seed) releaseStorage(values); // a device upload, spent once copied
  }
  else fillStorage(g, 1);
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    if (t.gradFn && t.gradStorage) {
      t.gradFn.backward();
      // Every consumer of t came later in the forward pass and has already pushed its gradient
      // into t, so t's gradient is spent: recycle it now, not after the pass, so that the
      // intermediate gradients of a whole network are never all alive at once. (Unless the
      // backward pass handed it to an input as that input's gradient: then t holds none.)
      if (t.gradStorage) releaseStorage(t.gradStorage);
      t.gradStorage = null;
    }
  }
  // Leaves (parameters, inputs) own their data; reshape outputs may share it.
  const kept = new Set(order.filter((t) => !t.gradFn).map((t) => t.storage));
  const freed = new Set<Storage>();
  for (const t of order) {
    if (t.gradFn) {
      t.gradFn = null;
      // Intermediate gradients are not needed after the pass: recycle them.
      if (t.gradStorage) releaseStorage(t.gradStorage);
      t.gradStorage = null;
      if (opts.freeActivations && !kept.has(t.storage) && !freed.has(t.storage)) freed.add(t.storage);
    }
  }
  for (const buf of freed) releaseStorage(buf);
}

/** Depth-first post-order without recursion (deep graphs would overflow the stack). */
export function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: Array<[Tensor, number]> = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const child = inputs[i]!;
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}
