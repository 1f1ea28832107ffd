import type { Backend } from './backend.js';
import { jsBackend } from './js/index.js';

export type { Backend } from './backend.js';
export { jsBackend } from './js/index.js';

let current: Backend = jsBackend;
const registry = new Map<string, Backend>([['js', jsBackend]]);

/** The backend every op dispatches to. */
export function backend(): Backend {
  return current;
}

export function registerBackend(b: Backend): void {
  registry.set(b.name, b);
}

export function availableBackends(): string[] {
  return [...registry.keys()];
}

export function setBackend(name: string): Backend {
  const b = registry.get(name);
  if (!b) throw new Error(`unknown backend "${name}" (available: ${availableBackends().join(', ')})`);
  current = b;
  return b;
}
