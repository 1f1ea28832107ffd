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

/** `parse`, then refused unless `ok`: the error says what the value `must be`. */
const within = (parse: (value: string) => number, ok: (n: number) => boolean, mustBe: string) => (value: string): number => {
  const n = parse(value);
  if (!ok(n)) throw new InvalidArgumentError(`must be ${mustBe} (got ${value}).`);
  return n;
};

/** A whole number of at least 1 (counts, sizes). */
export const posInt = within(int, (n) => n >= 1, '≥ 1');
/** A whole number of at least 0 (counts that may be zero, offsets). */
export const natural = within(int, (n) => n >= 0, '≥ 0');
/** A random seed: the generators take 32 bits (util/rng.ts), so a larger or negative one would act as another. */
export const seed = within(int, (n) => n >= 0 && n <= 0xffffffff, 'a whole number from 0 to 4294967295');
/** A number above 0 (weights, rates that cannot be zero). */
export const posNum = within(num, (n) => n > 0, '> 0');
/** A number of at least 0. */
export const nonNeg = within(num, (n) => n >= 0, '≥ 0');
/** A share, 0 to 1. */
export const rate = within(num, (n) => n >= 0 && n <= 1, 'between 0 and 1');
