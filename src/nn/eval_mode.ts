import type { Module } from './module.js';

/**
 * Run `f` with `module` in eval mode (no dropout), restoring its mode after —
 * when f returns, throws, or (if it returns a promise) when that settles.
 */
export function inEvalMode<T>(module: Module, f: () => T): T {
  const wasTraining = module.training;
  module.eval();
  let result: T;
  try {
    result = f();
  } catch (e) {
    module.train(wasTraining);
    throw e;
  }
  if (result instanceof Promise) return result.finally(() => module.train(wasTraining)) as T;
  module.train(wasTraining);
  return result;
}
