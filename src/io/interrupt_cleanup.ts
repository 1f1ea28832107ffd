import { rmSync } from 'node:fs';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/**
 * Run `work`, which fills the temporary `path` over many turns of the event
 * loop (a download), so that Ctrl-C or SIGTERM meanwhile removes `path`
 * before the process ends: an interrupted command leaves nothing behind.
 * A signal ends the process as it would have (re-raised once `path` is
 * gone), unless the program has listeners of its own, which then decide.
 * Synchronous writers need none of this: a signal's handlers run only
 * between turns, after they have renamed or removed their temp files.
 */
export async function removedIfInterrupted<T>(path: string, work: () => Promise<T>): Promise<T> {
  const onSignal = (signal: NodeJS.Signals): void => {
    rmSync(path, { recursive: true, force: true });
    stopListening();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const stopListening = (): void => {
    for (const s of SIGNALS) process.removeListener(s, onSignal);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    return await work();
  } finally {
    stopListening();
  }
}
