import { Rng } from '../util/rng.js';

/**
 * A labelled corpus for measuring a PII detector: sentences that carry
 * personal data (e-mails, phones, card numbers, SSNs, IBANs in the shapes
 * people write them) and sentences that carry none but are full of the
 * numbers a careless detector mistakes for it — dates, times, versions,
 * order and invoice numbers, IP addresses, ISBNs, prices, tracking codes,
 * 16-digit ids that fail the card checksum. Each positive text records the
 * exact substrings planted, so recall can be checked item by item.
 */

export interface PiiSample {
  text: string;
  /** The personal data planted, with its kind; empty for a negative. */
  planted: Array<{ kind: 'email' | 'phone' | 'card' | 'ssn' | 'iban'; value: string }>;
}

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(xs.length)]!;
const digits = (r: Rng, n: number, first = '0123456789'): string => pick(r, [...first]) + Array.from({ length: n - 1 }, () => String(r.int(10))).join('');

const FIRST = ['anna', 'li', 'marco', 'sofia', 'j', 'omar', 'chen', 'ines', 'olga', 'raj', 'emma.rose', 'k_nguyen'];
const LAST = ['smith', 'garcia', 'muller', 'rossi', 'kowalski', 'tanaka', 'okafor', 'dubois', 'silva', 'berg'];
const DOMAINS = ['example.com', 'mail.example.org', 'uni-bonn.de', 'company.co.uk', 'post.example.net', 'outlook.fr'];

function email(r: Rng): string {
  const sep = pick(r, ['.', '_', '', '-']);
  const tag = r.random() < 0.15 ? `+${pick(r, ['news', 'work', 'x1'])}` : '';
  const local = `${pick(r, FIRST)}${sep}${pick(r, LAST)}${r.random() < 0.3 ? String(r.int(100)) : ''}${tag}`;
  const addr = `${local}@${pick(r, DOMAINS)}`;
  return r.random() < 0.2 ? addr.toUpperCase() : addr;
}

function phone(r: Rng): string {
  const area = digits(r, 3, '23456789');
  const exch = digits(r, 3, '23456789');
  const line = digits(r, 4);
  switch (r.int(8)) {
    case 0: return `(${area}) ${exch}-${line}`;
    case 1: return `${area}-${exch}-${line}`;
    case 2: return `${area}.${exch}.${line}`;
    case 3: return `+1 ${area} ${exch} ${line}`;
    case 4: return `+44 20 ${digits(r, 4)} ${digits(r, 4)}`;
    case 5: return `+49 30 ${digits(r, 8)}`;
    case 6: return `020 ${digits(r, 4, '123456789')} ${digits(r, 4)}`;
    default: return `+33 6 ${digits(r, 2)} ${digits(r, 2)} ${digits(r, 2)} ${digits(r, 2)}`;
  }
}

/** The check digit that makes `body` pass Luhn. */
export function luhnDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = body.charCodeAt(body.length - 1 - i) - 48;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

function card(r: Rng): string {
  const kind = r.int(4);
  const prefix = kind === 0 ? '4' : kind === 1 ? pick(r, ['51', '52', '53', '54', '55']) : kind === 2 ? pick(r, ['34', '37']) : '6011';
  const len = kind === 2 ? 15 : 16;
  const body = prefix + Array.from({ length: len - 1 - prefix.length }, () => String(r.int(10))).join('');
  const d = body + luhnDigit(body);
  const sep = pick(r, [' ', '-', '']);
  if (sep === '') return d;
  return kind === 2 ? [d.slice(0, 4), d.slice(4, 10), d.slice(10)].join(sep) : d.match(/.{4}/g)!.join(sep);
}

function ssn(r: Rng): string {
  const area = String(1 + r.int(665)).padStart(3, '0');
  return `${area}-${String(1 + r.int(99)).padStart(2, '0')}-${String(1 + r.int(9999)).padStart(4, '0')}`;
}

/** An IBAN of one of a few countries with a correct mod-97 check. */
export function ibanOf(country: string, bban: string): string {
  const moved = `${bban}${country}00`.replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rem = 0;
  for (const ch of moved) rem = (rem * 10 + Number(ch)) % 97;
  return `${country}${String(98 - rem).padStart(2, '0')}${bban}`;
}

function iban(r: Rng): string {
  const [country, bban] = pick(r, [
    ['DE', () => digits(r, 18)],
    ['GB', () => `${pick(r, ['NWBK', 'BARC', 'HSBC'])}${digits(r, 14)}`],
    ['FR', () => digits(r, 23)],
    ['NL', () => `${pick(r, ['ABNA', 'INGB', 'RABO'])}${digits(r, 10)}`],
  ] as const);
  const s = ibanOf(country, bban());
  return r.random() < 0.6 ? s.match(/.{1,4}/g)!.join(' ') : s;
}

const MAKERS = { email, phone, card, ssn, iban };

const POSITIVE: Record<keyof typeof MAKERS, readonly string[]> = {
  email: ['Please write to {} for the refund.', 'My address is {}, reply there.', 'cc: {}', 'Contact the author ({}) with questions.', 'Sent from {} on Monday.'],
  phone: ['Call me at {} after 5pm.', 'You can reach the front desk on {}.', 'Phone: {}', 'My mobile is {} if anything changes.', 'Ring {} to confirm the booking.'],
  card: ['Charge it to my card {}, expiry 04/27.', 'The card number is {}.', 'I paid with {} yesterday.', 'Card: {} (Visa)', 'Use {} for the subscription.'],
  ssn: ['My SSN is {}.', 'Social security number: {}', 'Applicant SSN {} on file.', 'The form lists {} as the SSN.'],
  iban: ['Transfer the amount to IBAN {}.', 'Bank details: {} (Sparkasse).', 'Please pay into {} by Friday.', 'IBAN: {}'],
};

/** Number-heavy text with no personal data in it. */
function negative(r: Rng): string {
  const y = 1990 + r.int(36);
  const mo = String(1 + r.int(12)).padStart(2, '0');
  const da = String(1 + r.int(28)).padStart(2, '0');
  const makers = [
    () => `The meeting moved to ${y}-${mo}-${da} at ${r.int(24)}:${String(r.int(60)).padStart(2, '0')}.`,
    () => `Invoice INV-${y}-${digits(r, 5)} is due on ${da}/${mo}/${y}.`,
    () => `Your order #${digits(r, 3)}-${digits(r, 7)}-${digits(r, 7)} has shipped.`,
    () => `Order number ${digits(r, 10, '123456789')} was cancelled on ${mo}/${da}/${y}.`,
    () => `Upgrade to version ${r.int(20)}.${r.int(30)}.${r.int(200)} (build ${digits(r, 5)}).`,
    () => `Windows ${pick(r, ['10', '11'])} build 10.0.${digits(r, 5)}.${digits(r, 4)} is installed.`,
    () => `The server at 192.168.${r.int(256)}.${r.int(256)} answered in ${r.int(900)} ms.`,
    () => `ISBN 978-${r.int(10)}-${digits(r, 2)}-${digits(r, 6)}-${r.int(10)} is out of print.`,
    () => `The total was $${r.int(10)},${digits(r, 3)}.${digits(r, 2)} including ${r.int(25)}% tax.`,
    () => `Tracking code 1Z${digits(r, 3)}AA1${digits(r, 10)} left the depot.`,
    () => {
      // A card-shaped id whose check digit is off by one: it fails Luhn.
      const body = `4${digits(r, 14)}`;
      return `Reference ${body}${(Number(luhnDigit(body)) + 1) % 10} is not a card.`;
    },
    () => `Population grew from ${r.int(900)},${digits(r, 3)},${digits(r, 3)} to ${r.int(900)},${digits(r, 3)},${digits(r, 3)}.`,
    () => `Patch ${digits(r, 3)}-${digits(r, 3)}-${digits(r, 3)} fixes the crash in step ${r.int(100)}.`,
    () => `Coordinates ${r.int(90)}.${digits(r, 6)}, ${r.int(180)}.${digits(r, 6)} mark the summit.`,
    () => `Room ${digits(r, 3)}, floor ${r.int(30)}, postcode ${digits(r, 5)}.`,
    () => `The ticket ABC-${digits(r, 4)} was closed at ${y}${mo}${da}T${digits(r, 6)}Z.`,
    () => `Batch ${y}-${mo}-${da}-${digits(r, 4)} passed QA.`,
    () => `Write to the team on the forum; the handle is @${pick(r, FIRST)}${r.int(100)}.`,
    () => `Score ${r.int(100)}-${r.int(100)} after ${r.int(120)} minutes, attendance ${digits(r, 5)}.`,
    () => `Call the function with 3 arguments and 2 retries, timeout ${digits(r, 4)} ms.`,
    () => `Serial SN-${digits(r, 4)}-${digits(r, 4)}-${digits(r, 4)} registered.`,
    () => `Package v${r.int(5)}.${r.int(20)}.${r.int(20)}-rc.${r.int(9)} sha ${digits(r, 7)}.`,
  ];
  return pick(r, makers)();
}

/**
 * `n` texts, about half with personal data (one or two items, of any kind),
 * half without, in a seeded order.
 */
export function piiCorpus(n: number, seed = 1): PiiSample[] {
  const r = new Rng(seed);
  const kinds = Object.keys(MAKERS) as Array<keyof typeof MAKERS>;
  const out: PiiSample[] = [];
  for (let i = 0; i < n; i++) {
    if (r.random() < 0.5) {
      out.push({ text: `${negative(r)}${r.random() < 0.4 ? ` ${negative(r)}` : ''}`, planted: [] });
      continue;
    }
    const planted: PiiSample['planted'] = [];
    const parts: string[] = [];
    for (let k = 0; k < (r.random() < 0.25 ? 2 : 1); k++) {
      const kind = pick(r, kinds);
      const value = MAKERS[kind](r);
      planted.push({ kind, value });
      parts.push(pick(r, POSITIVE[kind]).replace('{}', value));
    }
    if (r.random() < 0.5) parts.push(negative(r));
    out.push({ text: parts.join(' '), planted });
  }
  return out;
}
