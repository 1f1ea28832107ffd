import { InvalidArgumentError } from 'commander';

/** Commander parsers that reject anything that is not a finite number. */
export function num(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`"${value}" is not a number.`);
  return n;
}

export function int(value: string): number {
  const n = num(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`"${value}" is not an integer.`);
  return n;
}

/** A whole number of at least 1 (counts, sizes). */
export function posInt(value: string): number {
  const n = int(value);
  if (n < 1) throw new InvalidArgumentError(`must be ≥ 1 (got ${value}).`);
  return n;
}

/** A whole number of at least 0 (seeds, offsets). */
export function natural(value: string): number {
  const n = int(value);
  if (n < 0) throw new InvalidArgumentError(`must be ≥ 0 (got ${value}).`);
  return n;
}

/** A number above 0 (weights, rates that cannot be zero). */
export function posNum(value: string): number {
  const n = num(value);
  if (!(n > 0)) throw new InvalidArgumentError(`must be > 0 (got ${value}).`);
  return n;
}

/** A number of at least 0. */
export function nonNeg(value: string): number {
  const n = num(value);
  if (n < 0) throw new InvalidArgumentError(`must be ≥ 0 (got ${value}).`);
  return n;
}

/** A share, 0 to 1. */
export function rate(value: string): number {
  const r = num(value);
  if (!(r >= 0 && r <= 1)) throw new InvalidArgumentError(`must be between 0 and 1 (got ${value}).`);
  return r;
}
