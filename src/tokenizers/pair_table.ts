/**
 * The merge rules as a hash table from a pair of token ids (a, b) to the
 * merge's rank and the id it makes. BPE encoding asks it about every adjacent
 * pair, so it is an open-addressing table in typed arrays: no strings, no
 * boxed keys, no allocation while encoding.
 */
export class PairTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly ranks: Int32Array;
  private readonly ids: Int32Array;
  private readonly mask: number;

  constructor(merges: ReadonlyArray<readonly [number, number, number]>) {
    let size = 16;
    while (size < merges.length * 2) size *= 2; // load factor ≤ ½
    this.mask = size - 1;
    this.left = new Int32Array(size).fill(-1);
    this.right = new Int32Array(size);
    this.ranks = new Int32Array(size);
    this.ids = new Int32Array(size);
    merges.forEach(([a, b, id], rank) => {
      let h = this.hash(a, b);
      while (this.left[h] !== -1) {
        if (this.left[h] === a && this.right[h] === b) return; // a repeated rule: the first (lowest rank) wins
        h = (h + 1) & this.mask;
      }
      this.left[h] = a;
      this.right[h] = b;
      this.ranks[h] = rank;
      this.ids[h] = id;
    });
  }

  private hash(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> 7 & this.mask;
  }

  /** Slot of the pair, or -1 if (a, b) is not a merge. */
  find(a: number, b: number): number {
    let h = this.hash(a, b);
    for (;;) {
      const l = this.left[h]!;
      if (l === -1) return -1;
      if (l === a && this.right[h] === b) return h;
      h = (h + 1) & this.mask;
    }
  }

  /** Rank of the merge (a, b); Infinity-like for no merge. */
  rank(a: number, b: number): number {
    const h = this.find(a, b);
    return h < 0 ? NO_MERGE : this.ranks[h]!;
  }

  /** The id that merging (a, b) makes; only valid when rank(a, b) is not NO_MERGE. */
  mergedId(a: number, b: number): number {
    return this.ids[this.find(a, b)]!;
  }
}

export const NO_MERGE = 0x7fffffff;
