import type { ServerResponse } from 'node:http';

/**
 * Server-Sent Events as OpenAI streams them: `data: <json>` lines separated by
 * a blank line, ending with `data: [DONE]`. Writes after the client left are
 * dropped.
 */
export class SseWriter {
  constructor(private readonly res: ServerResponse) {}

  open(headers: Record<string, string> = {}): void {
    this.res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no', ...headers });
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  send(data: unknown): void {
    if (!this.closed) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    if (this.closed) return;
    this.res.write('data: [DONE]\n\n');
    this.res.end();
  }
}
