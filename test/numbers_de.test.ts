import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { english, german, heldOutNumbers, isHeldOut, numberPieces, sampleTrainNumber } from '../src/data/numbers_de.js';
import { PieceTokenizer } from '../src/tokenizers/piece.js';
import { Rng } from '../src/util/rng.js';

const KNOWN: Array<[number, string, string]> = [
  [0, 'zero', 'null'],
  [1, 'one', 'eins'],
  [7, 'seven', 'sieben'],
  [11, 'eleven', 'elf'],
  [16, 'sixteen', 'sechzehn'],
  [17, 'seventeen', 'siebzehn'],
  [21, 'twenty-one', 'einundzwanzig'],
  [30, 'thirty', 'dreißig'],
  [99, 'ninety-nine', 'neunundneunzig'],
  [100, 'one hundred', 'einhundert'],
  [101, 'one hundred one', 'einhunderteins'],
  [342, 'three hundred forty-two', 'dreihundertzweiundvierzig'],
  [1000, 'one thousand', 'eintausend'],
  [1001, 'one thousand one', 'eintausendeins'],
  [21_345, 'twenty-one thousand three hundred forty-five', 'einundzwanzigtausenddreihundertfünfundvierzig'],
  [101_101, 'one hundred one thousand one hundred one', 'einhunderteintausendeinhunderteins'],
  [999_999, 'nine hundred ninety-nine thousand nine hundred ninety-nine', 'neunhundertneunundneunzigtausendneunhundertneunundneunzig'],
];

describe('number words', () => {
  for (const [n, en, de] of KNOWN) {
    it(`${n} → "${en}" / "${de}"`, () => {
      assert.equal(english(n), en);
      assert.equal(german(n), de);
    });
  }

  it('rejects numbers outside 0 … 999 999', () => {
    for (const n of [-1, 1.5, 1_000_000]) {
      assert.throws(() => english(n), RangeError);
      assert.throws(() => german(n), RangeError);
    }
  });

  it('every number has distinct words in each language', () => {
    const seenEn = new Set<string>();
    const seenDe = new Set<string>();
    for (let n = 0; n <= 999_999; n += 37) {
      seenEn.add(english(n));
      seenDe.add(german(n));
    }
    assert.equal(seenEn.size, seenDe.size);
  });

  it('the word pieces tokenize every number without falling back to characters', () => {
    const tok = new PieceTokenizer(numberPieces());
    for (const n of [0, 16, 17, 21, 66, 77, 101, 1001, 21_345, 777_777, 999_999]) {
      for (const text of [english(n), german(n)]) assert.equal(tok.decode(tok.encode(text)), text);
    }
    assert.deepEqual([...tok.encode('einundzwanzig')].map((id) => tok.piece(id)), ['ein', 'und', 'zwanzig']);
    assert.deepEqual([...tok.encode('twenty-one')].map((id) => tok.piece(id)), ['twenty', '-', 'one']);
  });
});

describe('held-out split', () => {
  it('training never draws a held-out number, and every magnitude is drawn', () => {
    const rng = new Rng(1);
    const digits = new Set<number>();
    for (let i = 0; i < 3000; i++) {
      const n = sampleTrainNumber(rng);
      assert.ok(!isHeldOut(n));
      digits.add(String(n).length);
    }
    assert.deepEqual([...digits].sort(), [1, 2, 3, 4, 5, 6]);
  });

  it('is fixed, about 2 % of numbers, and spread over magnitudes', () => {
    const a = heldOutNumbers(600);
    assert.deepEqual(a, heldOutNumbers(600));
    assert.equal(new Set(a).size, 600);
    assert.ok(a.every(isHeldOut));
    let count = 0;
    for (let n = 0; n < 100_000; n++) if (isHeldOut(n)) count++;
    assert.ok(count > 1500 && count < 2500, `${count} held out of 100 000`);
    assert.ok(a.filter((n) => n < 1000).length >= 10, 'small numbers are in the evaluation set');
  });
});
