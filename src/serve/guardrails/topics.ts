/**
 * Blocked topics: each a name and the words or phrases that signal it,
 * matched whole (case-insensitive, on word boundaries) so that "arms" does
 * not match "farms". Operators list what their deployment must not discuss.
 */

export interface BlockedTopic {
  name: string;
  terms: readonly string[];
}

export interface CompiledTopic {
  name: string;
  pattern: RegExp;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function compileTopics(topics: readonly BlockedTopic[]): CompiledTopic[] {
  // \b only knows ASCII word characters; lookarounds on letters and digits work for any script.
  return topics.map((t) => ({ name: t.name, pattern: new RegExp(`(?<![\\p{L}\\p{N}])(?:${t.terms.map((w) => escape(w.trim()).replace(/\s+/g, '\\s+')).join('|')})(?![\\p{L}\\p{N}])`, 'iu') }));
}

/** The first blocked topic the text touches, with the term found; null when none. */
export function findBlockedTopic(text: string, topics: readonly CompiledTopic[]): { topic: string; term: string } | null {
  for (const t of topics) {
    const m = t.pattern.exec(text);
    if (m) return { topic: t.name, term: m[0] };
  }
  return null;
}
