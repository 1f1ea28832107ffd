import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import { checkOutFile, writeFileAtomic } from '../io/atomic.js';
import { readGGUF } from '../io/gguf.js';
import { tokenizerFromGGUF } from '../io/gguf_tokenizer.js';
import { ATTN_TOKENIZER_FILE, isGGUFPath, openModelDir } from '../io/model_dir.js';
import { checkReplaceableFile } from './out_dir.js';
import { UserError } from '../util/errors.js';
import { BPETokenizer } from '../tokenizers/bpe.js';
import { trainBPE } from '../tokenizers/bpe_train.js';
import { loadDirTokenizer, loadTokenizerFile } from '../tokenizers/index.js';
import { PATTERNS } from '../tokenizers/pretokenize.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { WordTokenizer } from '../tokenizers/word.js';
import { int } from './flags.js';
import { readTextFile } from '../io/read_text.js';
import { chatTemplateOf } from '../chat/for_tokenizer.js';
import { parseChatMessages } from '../chat/messages.js';

/** A progress bar on stderr for tokenizer training: redrawn on a terminal, a few lines otherwise. */
export function tokenizerProgress(label: string, stream: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  let lastTenth = -1;
  return (done, total) => {
    const width = 24;
    const filled = Math.round((width * done) / Math.max(1, total));
    const text = `${label}: ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${done}/${total} merges`;
    if (stream.isTTY) stream.write(`\r\x1b[2K${text}${done === total ? '\n' : ''}`);
    else if (Math.floor((10 * done) / total) > lastTenth) {
      lastTenth = Math.floor((10 * done) / total);
      stream.write(text + '\n');
    }
  };
}

/** A token as text to show: control characters escaped, bytes of a cut character in hex. */
function showToken(tokenizer: Tokenizer, id: number): string {
  // Byte-level tokens (GPT-2's, Llama 3's, a SentencePiece <0xNN>) may hold part of a character.
  if (tokenizer instanceof BPETokenizer || tokenizer.decodeBytes) {
    const bytes = tokenizer instanceof BPETokenizer ? tokenizer.tokenBytes(id) : tokenizer.decodeBytes!([id]);
    try {
      return escape(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
    } catch {
      return `<${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')}>`;
    }
  }
  return escape(tokenizer.decode([id]));
}

const escape = (s: string): string => s.replace(/[\u0000-\u001f\u007f|\\]/g, (c) => ({ '\n': '\\n', '\t': '\\t', '\r': '\\r', '|': '\\|', '\\': '\\\\' })[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

function chooseTokenizer(o: { model?: string; tokenizer?: string }): Tokenizer {
  if (o.model && o.tokenizer) throw new UserError('give --model or --tokenizer, not both');
  if (o.tokenizer) return isGGUFPath(o.tokenizer) ? ggufTokenizer(o.tokenizer) : loadTokenizerFile(o.tokenizer);
  if (o.model) return modelTokenizer(o.model);
  throw new UserError('tokenize needs --model DIR or --tokenizer FILE');
}

/** The tokenizer a model loads with: a GGUF file's own, or its directory's (attn_tokenizer.json too, which attn export --to hf writes beside a GPT-2 layout). */
function modelTokenizer(model: string): Tokenizer {
  if (isGGUFPath(model)) return ggufTokenizer(model);
  openModelDir(model); // a missing directory, or a file, is named as such rather than "has no tokenizer"
  const fallback = join(model, ATTN_TOKENIZER_FILE);
  const t = loadDirTokenizer(model) ?? (existsSync(fallback) ? loadTokenizerFile(fallback) : null);
  if (!t) throw new UserError(`${model} has no tokenizer (tokenizer.json, ${ATTN_TOKENIZER_FILE}, or vocab.json + merges.txt)`);
  return t;
}

function ggufTokenizer(path: string): Tokenizer {
  const t = tokenizerFromGGUF(readGGUF(path), path);
  if (!t) throw new UserError(`${path} holds no tokenizer (no tokenizer.ggml.* metadata)`);
  return t;
}

/** Ids written as a JSON array or separated by spaces/commas. */
function parseIds(input: string): number[] {
  const parts = input.replace(/^\s*\[|\]\s*$/g, '').split(/[\s,]+/).filter(Boolean);
  return parts.map((p) => {
    if (!/^-?\d+$/.test(p)) throw new UserError(`--decode: ${JSON.stringify(p)} is not a token id`);
    return Number(p);
  });
}

export interface TokenizeCliOptions {
  model?: string;
  tokenizer?: string;
  file?: string;
  json?: boolean;
  decode?: boolean;
  /** A JSON file of chat messages, rendered with the tokenizer's chat template. */
  chat?: string;
}

/**
 * Encode text and print its ids and where the token boundaries fall (with
 * json, only the ids); or, with decode, turn ids back into text.
 */
export function runTokenize(o: TokenizeCliOptions, text: string | undefined, write: (s: string) => void): void {
  if (o.chat !== undefined) {
    if (text !== undefined || o.file !== undefined || o.decode) throw new UserError('--chat takes the messages from its file: give no text, --file or --decode with it');
    runTokenizeChat(o, o.chat, write);
    return;
  }
  if ((text === undefined) === (o.file === undefined)) throw new UserError('give the text to tokenize as an argument or with --file F (one of them)');
  if (o.decode && o.json) throw new UserError('--json prints the ids of encoded text; --decode prints text: give one of them');
  const tokenizer = chooseTokenizer(o);
  const input = o.file !== undefined ? readTextFile(o.file) : text!;
  if (o.decode) {
    write(tokenizer.decode(parseIds(input)) + '\n');
    return;
  }
  const ids = tokenizer.encode(input, { allowedSpecial: 'all' });
  if (o.json) {
    write(JSON.stringify(Array.from(ids)) + '\n');
    return;
  }
  write(`${ids.length} tokens (${tokenizer.type}, vocabulary ${tokenizer.vocabSize})\n`);
  write(Array.from(ids).join(' ') + '\n');
  write(Array.from(ids, (id) => showToken(tokenizer, id)).join('|') + '\n');
}

/**
 * Render a messages file with the tokenizer's chat template (ChatML when it
 * has none), ready for the assistant's reply, and encode it: special tokens
 * the template writes are encoded as themselves, and nothing is added around
 * the text (the template writes its own BOS).
 */
function runTokenizeChat(o: TokenizeCliOptions, messagesFile: string, write: (s: string) => void): void {
  const tokenizer = chooseTokenizer(o);
  let raw: unknown;
  try {
    raw = JSON.parse(readTextFile(messagesFile));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${messagesFile}: invalid JSON: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}`); // one line: Node quotes the text around the fault
  }
  const messages = parseChatMessages(raw, messagesFile);
  const text = chatTemplateOf(tokenizer).render(messages, { addGenerationPrompt: true });
  const ids = Array.from(tokenizer.encode(text, { allowedSpecial: 'all' }));
  if (o.json) write(JSON.stringify({ text, ids }) + '\n');
  else write(`${text}\n${ids.join(' ')}\n`);
}

export function tokenizeCommand(): Command {
  return new Command('tokenize')
    .description('encode text and show its token ids and token boundaries ("|"; \\n is a newline, <e6 97> bytes of a cut character)')
    .argument('[text]', 'the text to encode')
    .option('--model <dir>', 'use the tokenizer of this model directory (or GGUF file)')
    .option('--tokenizer <path>', 'a tokenizer.json (attn\'s own or Hugging Face\'s), a directory holding tokenizer.json + tokenizer_config.json, or a GGUF file')
    .option('--file <f>', 'encode this UTF-8 file instead of the argument')
    .option('--json', 'print only the ids, as a JSON array (with --chat: {"text", "ids"})')
    .option('--decode', 'the input is token ids (a JSON array or separated by spaces): print their text')
    .option('--chat <messages.json>', 'render these chat messages ([{"role", "content"}, …]) with the tokenizer\'s chat template; print the prompt text, then its ids')
    .action((text: string | undefined, opts: TokenizeCliOptions) => runTokenize(opts, text, (s) => process.stdout.write(s)));
}

interface TrainTokenizerOptions {
  data: string;
  vocabSize: number;
  out: string;
  type: 'bpe' | 'word';
  pattern: string;
  special: string[];
}

/** Learn a tokenizer from a text file and save it as our tokenizer.json. */
export function runTokenizerTrain(o: TrainTokenizerOptions): Record<string, unknown> {
  checkOutFile(o.out, '--out');
  checkReplaceableFile(o.out, isTokenizerJSON, 'a tokenizer.json');
  // A model's tokenizer must stay the one its embedding rows were trained for.
  if (existsSync(join(dirname(o.out), 'config.json'))) throw new UserError(`--out ${o.out} is in a model directory, whose tokenizer must match its weights; write the tokenizer elsewhere`);
  checkSpecialTokens(o.special);
  const text = readTextFile(o.data);
  const t0 = performance.now();
  const tokenizer =
    o.type === 'word'
      ? WordTokenizer.fromText(text, o.vocabSize)
      : trainBPE(text, { vocabSize: o.vocabSize, pattern: o.pattern, specialTokens: o.special, onProgress: tokenizerProgress('training BPE') });
  const seconds = (performance.now() - t0) / 1000;
  writeFileAtomic(o.out, JSON.stringify(tokenizer.toJSON()) + '\n');
  return { type: tokenizer.type, vocab_size: tokenizer.vocabSize, seconds: Number(seconds.toFixed(3)), out: o.out };
}

/** An empty special token never ends the split of the text around specials (training runs out of memory); a repeated one would take two ids. */
function checkSpecialTokens(special: string[]): void {
  if (special.some((t) => t === '')) throw new UserError('--special: a special token cannot be empty');
  const repeated = special.find((t, i) => special.indexOf(t) !== i);
  if (repeated !== undefined) throw new UserError(`--special: ${JSON.stringify(repeated)} is given twice`);
}

/** An earlier tokenizer.json (attn's: "type"; Hugging Face's: "model"), which a new one may replace. */
function isTokenizerJSON(path: string): boolean {
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown> | null;
    return typeof raw === 'object' && raw !== null && (typeof raw.type === 'string' || typeof raw.model === 'object');
  } catch {
    return false;
  }
}

export function tokenizerCommand(): Command {
  const cmd = new Command('tokenizer').description('tokenizer tools');
  cmd.addCommand(
    new Command('train')
      .description('learn a byte-level BPE (or word) vocabulary from a text file; prints a JSON summary')
      .requiredOption('--data <file>', 'training text (UTF-8)')
      .requiredOption('--vocab-size <n>', 'vocabulary size, special tokens included (bpe: at least 256 + specials)', int)
      .requiredOption('--out <file>', 'where to write tokenizer.json')
      .addOption(new Option('--type <kind>', 'tokenizer kind').choices(['bpe', 'word']).default('bpe'))
      .addOption(new Option('--pattern <name>', 'pre-tokenizer regex: GPT-2\'s or GPT-4\'s (cl100k)').choices(Object.keys(PATTERNS)).default('gpt2'))
      .option('--special <token...>', 'special tokens to reserve', ['<|endoftext|>'])
      .action((opts: TrainTokenizerOptions) => {
        process.stdout.write(JSON.stringify(runTokenizerTrain(opts)) + '\n');
      })
      .exitOverride()
      .showHelpAfterError('(run with --help for usage)'),
  );
  return cmd;
}
