import { UserError } from './errors.js';

/**
 * A whole-number setting from the environment (the ATTN_* knobs: the WebGPU
 * backend's, ATTN_DECODE_AHEAD; 0 = off), or `fallback` when unset; anything else is a UserError
 * naming the variable and its `unit`. Read through globalThis: a browser has
 * no process.
 */
export function envCount(name: string, fallback: number, unit: string): number {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  if (env === undefined || env === '') return fallback;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`${name}: expected a whole number of ${unit} (0 = off), got '${env}'`);
  return n;
}
