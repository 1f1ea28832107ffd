import { TOOL_CALL_OPEN } from './tools.js';

/** Where a streamed answer goes: text as `delta.content`, a call as `delta.tool_calls`. */
export interface ToolStreamSink {
  content(text: string): void;
  toolCall(delta: { index: number; id?: string; type?: 'function'; function: { name?: string; arguments: string } }): void;
}

const HEAD = /^\{"name":("[A-Za-z0-9_-]+"),"arguments":/;

/**
 * Turns the generated text of one choice, piece by piece, into what
 * OpenAI streams: plain text as content; a call as a first tool_calls delta
 * with its index, id, type and name (arguments ""), then the arguments in
 * fragments as they are generated. Text is held back only while it could
 * still be the `<tool_call>` marker or the call's head; the wrapper's closing
 * `}</tool_call>` is never shown (the arguments end where their object closes).
 */
export class ToolCallStream {
  private phase: 'undecided' | 'text' | 'head' | 'args' | 'tail' = 'undecided';
  private held = '';
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(
    private readonly callId: string,
    private readonly sink: ToolStreamSink,
  ) {}

  push(piece: string): void {
    if (piece === '') return;
    switch (this.phase) {
      case 'text':
        return this.sink.content(piece);
      case 'tail':
        return;
      case 'args':
        return this.args(piece);
      case 'undecided': {
        this.held += piece;
        if (TOOL_CALL_OPEN.startsWith(this.held)) return; // could still be the marker
        if (!this.held.startsWith(TOOL_CALL_OPEN)) {
          this.phase = 'text';
          const text = this.held;
          this.held = '';
          return this.sink.content(text);
        }
        this.phase = 'head';
        const rest = this.held.slice(TOOL_CALL_OPEN.length);
        this.held = '';
        return this.push(rest);
      }
      case 'head': {
        this.held += piece;
        const m = HEAD.exec(this.held);
        if (!m) return;
        this.phase = 'args';
        this.sink.toolCall({ index: 0, id: this.callId, type: 'function', function: { name: JSON.parse(m[1]!) as string, arguments: '' } });
        const rest = this.held.slice(m[0].length);
        this.held = '';
        return this.push(rest);
      }
    }
  }

  /** At the end of the answer: text still held back (a marker that never completed) is content after all. */
  end(): void {
    if (this.phase === 'undecided' && this.held !== '') this.sink.content(this.held);
    if (this.phase === 'head') this.sink.content(TOOL_CALL_OPEN + this.held);
    this.held = '';
  }

  /** Arguments up to the end of their object; the rest is the wrapper's tail. */
  private args(piece: string): void {
    let end = piece.length;
    for (let i = 0; i < piece.length; i++) {
      const c = piece[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === 0) {
          end = i + 1;
          this.phase = 'tail';
          break;
        }
      }
    }
    if (end > 0) this.sink.toolCall({ index: 0, function: { arguments: piece.slice(0, end) } });
  }
}
