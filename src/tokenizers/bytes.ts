/**
 * GPT-2's byte ↔ unicode map. Byte-level BPE works on bytes, but GPT-2's
 * files (encoder.json, vocab.bpe) store tokens as text; so each of the 256
 * bytes is given a printable character: printable Latin-1 bytes stand for
 * themselves, the rest (controls, space, …) are shifted to U+0100 and up.
 * That is why a leading space shows as "Ġ" in GPT-2's vocabulary.
 */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCharCode(printable(b) ? b : 256 + shifted++);
  return map;
})();

export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** The bytes a GPT-2 token string stands for, or null if a character is not in the map. */
export function unicodeToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = UNICODE_TO_BYTE.get(token[i]!);
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

export function bytesToUnicode(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_UNICODE[b];
  return s;
}
