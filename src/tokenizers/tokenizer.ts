/** Turns text into integer ids and back; saved as tokenizer.json beside the model. */
export interface Tokenizer {
  readonly type: string;
  readonly vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
  toJSON(): object;
}
