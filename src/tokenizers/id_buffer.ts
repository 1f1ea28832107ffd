/** A growable Int32Array: encode's output, without a JS array of boxed numbers in between. */
export class IdBuffer {
  private data: Int32Array;
  length = 0;

  constructor(capacity = 64) {
    this.data = new Int32Array(Math.max(16, capacity));
  }

  private grow(need: number): void {
    let cap = this.data.length * 2;
    while (cap < need) cap *= 2;
    const next = new Int32Array(cap);
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }

  push(id: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = id;
  }

  pushAll(ids: Int32Array): void {
    if (this.length + ids.length > this.data.length) this.grow(this.length + ids.length);
    if (ids.length === 1) this.data[this.length] = ids[0]!;
    else this.data.set(ids, this.length);
    this.length += ids.length;
  }

  /** The ids pushed so far, as an array of exactly that length. */
  toArray(): Int32Array {
    return this.data.slice(0, this.length);
  }
}
