import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Rng } from '../util/rng.js';

/**
 * The fleet bench's load generator: N streaming clients, spread over worker
 * threads, so that on a many-core machine the generator (each streamed token
 * is an SSE event to receive and parse) can use more than one core. Times are
 * absolute (timeOrigin + now) so that logs from different threads share one
 * clock.
 */

export interface RequestLog {
  start: number;
  end: number;
  ok: boolean;
  tokens: number;
  error?: string;
}

export interface ClientsJob {
  url: string;
  /** Absolute ms (clock()) after which no new request starts. */
  until: number;
  /** Seeds of this thread's clients (one client each). */
  seeds: number[];
  promptTokens: number;
  maxTokens: number;
  vocab: number;
}

/** Milliseconds on a clock shared by every thread of the process. */
export const clock = (): number => performance.timeOrigin + performance.now();

/** Streamed completions back to back until the deadline; a request under way at the deadline is finished, not abandoned. */
async function client(job: ClientsJob, rng: Rng, out: RequestLog[]): Promise<void> {
  while (clock() < job.until) {
    const prompt = Array.from({ length: job.promptTokens }, () => String.fromCodePoint(0x100 + rng.int(job.vocab))).join('');
    const start = clock();
    let tokens = 0;
    try {
      const res = await fetch(`${job.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-attn-task': 'fleet-bench' },
        body: JSON.stringify({ model: 'bench', prompt, max_tokens: job.maxTokens, temperature: 0, stream: true }),
      });
      if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      const text = await res.text(); // tokens arrive as SSE chunks; this bench counts them at the end
      if (!text.endsWith('data: [DONE]\n\n')) throw new Error('the stream ended without [DONE]');
      for (const event of text.split('\n\n')) {
        if (!event.startsWith('data: {')) continue;
        const chunk = JSON.parse(event.slice(6)) as { error?: { message: string }; choices: Array<{ finish_reason: string | null }> };
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.choices[0] && chunk.choices[0].finish_reason === null) tokens++;
      }
      out.push({ start, end: clock(), ok: true, tokens });
    } catch (e) {
      out.push({ start, end: clock(), ok: false, tokens, error: (e as Error).message });
    }
  }
}

async function runJob(job: ClientsJob): Promise<RequestLog[]> {
  const log: RequestLog[] = [];
  await Promise.all(job.seeds.map((seed) => client(job, new Rng(seed), log)));
  return log;
}

/**
 * Run `clients` clients (seeds 1000, 1001, …) over `threads` worker threads
 * until `until`; the merged log of every request.
 */
export async function runClients(job: Omit<ClientsJob, 'seeds'>, clients: number, threads: number): Promise<RequestLog[]> {
  const n = Math.max(1, Math.min(threads, clients));
  const jobs: ClientsJob[] = Array.from({ length: n }, (_, t) => ({
    ...job,
    seeds: Array.from({ length: clients }, (_, i) => 1000 + i).filter((_, i) => i % n === t),
  }));
  const logs = await Promise.all(
    jobs.map(
      (j) =>
        new Promise<RequestLog[]>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: { fleetClients: j } });
          w.once('message', (log: RequestLog[]) => resolve(log));
          w.once('error', reject);
          w.once('exit', (code) => code !== 0 && reject(new Error(`a fleet client thread exited with code ${code}`)));
        }),
    ),
  );
  return logs.flat();
}

if (!isMainThread && (workerData as { fleetClients?: ClientsJob } | null)?.fleetClients) {
  const job = (workerData as { fleetClients: ClientsJob }).fleetClients;
  void runJob(job).then((log) => parentPort!.postMessage(log));
}
