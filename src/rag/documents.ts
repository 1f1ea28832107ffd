import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { UserError } from '../util/errors.js';

/**
 * The documents to index: files named on the command line and, in named
 * directories, every text, Markdown or HTML file below them. A file that
 * cannot be read, or is not text, is skipped with a message naming it; the
 * rest are still indexed.
 */

export interface Document {
  /** The path as given (normalised): the chunks' `source`. */
  source: string;
  /** The text chunks are cut from: HTML with its tags stripped, anything else as it is. */
  text: string;
}

export interface Skipped {
  source: string;
  reason: string;
}

/** Extensions picked up when walking a directory (a file named explicitly may have any). */
export const TEXT_EXTENSIONS = new Set(['.txt', '.md', '.markdown', '.html', '.htm', '.text', '.rst']);

/** Every file to consider, in a stable order; a path that does not exist is a UserError. */
export function listFiles(paths: readonly string[]): string[] {
  if (paths.length === 0) throw new UserError('give at least one FILE or directory to index');
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue; // .git, editor files
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && TEXT_EXTENSIONS.has(extname(e.name).toLowerCase())) out.push(p);
    }
  };
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new UserError(`${p}: no such file or directory`);
    }
    if (st.isDirectory()) walk(p);
    else out.push(normalize(p));
  }
  return [...new Set(out)];
}

/** A file's text, or why it is skipped (unreadable, binary, not UTF-8, empty). */
export function readDocument(path: string): Document | Skipped {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { source: path, reason: code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : `unreadable (${(e as Error).message})` };
  }
  // A NUL byte in the first 8 KiB is the usual sign of a binary file (git uses the same test).
  if (bytes.subarray(0, 8192).includes(0)) return { source: path, reason: 'binary file' };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { source: path, reason: 'not UTF-8 text' };
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.html' || ext === '.htm') text = htmlToText(text);
  if (text.trim() === '') return { source: path, reason: 'no text' };
  return { source: path, text };
}

export const isSkipped = (d: Document | Skipped): d is Skipped => 'reason' in d;

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/**
 * Visible text of an HTML page: scripts, styles and comments removed, block
 * elements turned into paragraph breaks (so chunking still sees paragraphs),
 * other tags dropped, common entities decoded.
 */
export function htmlToText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<(script|style|noscript|template)\b[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/?(p|div|section|article|header|footer|h[1-6]|li|ul|ol|table|tr|blockquote|pre|title)\b[^>]*>/gi, '\n\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return Number.isFinite(code) && code > 0 && code < 0x110000 ? String.fromCodePoint(code) : m;
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    })
    .replace(/[ \t]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
