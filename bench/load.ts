// Load generation: seed-protocol WebSocket clients that time each turn, and percentiles.
import WebSocket from "ws";

export interface Frame {
  message?: unknown;
  error?: unknown;
  [key: string]: unknown;
}

/** One user's socket. Seed sockets get exactly one frame per message, so a turn is send → next frame. */
export class BenchClient {
  readonly userId: string;
  readonly #ws: WebSocket;
  readonly #frames: Frame[] = [];
  #waiter: ((frame: Frame | Error) => void) | undefined;
  #closed: Promise<void>;
  #failure: Error | undefined;

  private constructor(url: string, userId: string) {
    this.userId = userId;
    this.#ws = new WebSocket(url, { perMessageDeflate: false });
    this.#ws.on("message", (data) => {
      let frame: Frame;
      try {
        frame = JSON.parse(data.toString()) as Frame;
      } catch {
        frame = { error: `not JSON: ${data.toString().slice(0, 200)}` };
      }
      const waiter = this.#waiter;
      this.#waiter = undefined;
      if (waiter) waiter(frame);
      else this.#frames.push(frame);
    });
    this.#closed = new Promise((resolve) => {
      this.#ws.on("close", (code, reason) => {
        this.#failure ??= new Error(`socket of ${userId} closed (${code} ${reason.toString()})`);
        const waiter = this.#waiter;
        this.#waiter = undefined;
        waiter?.(this.#failure);
        resolve();
      });
    });
    this.#ws.on("error", (error) => {
      this.#failure = error;
    });
  }

  /** Opens a socket and reads the welcome frame. */
  static async connect(baseWsUrl: string, userId: string, timeoutMs = 30_000): Promise<BenchClient> {
    const client = new BenchClient(`${baseWsUrl}/ws/${userId}`, userId);
    const welcome = await client.next(timeoutMs);
    if (typeof welcome.message !== "string" || !welcome.message.startsWith("Welcome")) {
      client.terminate();
      throw new Error(`${userId}: expected a welcome frame, got ${JSON.stringify(welcome)}`);
    }
    return client;
  }

  next(timeoutMs: number): Promise<Frame> {
    const queued = this.#frames.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#ws.readyState === WebSocket.CLOSED) return Promise.reject(this.#failure ?? new Error("socket closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new Error(`${this.userId}: no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiter = (frame) => {
        clearTimeout(timer);
        if (frame instanceof Error) reject(frame);
        else resolve(frame);
      };
    });
  }

  /** Sends any frame (e.g. `{"type":"history"}`); resolves with the next frame and the ms it took. */
  async request(frame: Record<string, unknown>, timeoutMs = 30_000): Promise<{ frame: Frame; ms: number; bytes: number }> {
    const started = performance.now();
    this.#ws.send(JSON.stringify(frame));
    const answer = await this.next(timeoutMs);
    return { frame: answer, ms: performance.now() - started, bytes: JSON.stringify(answer).length };
  }

  /** Sends a chat message; resolves with the turn's duration in ms. An error frame fails the bench. */
  async turn(message: string, timeoutMs = 120_000): Promise<number> {
    const started = performance.now();
    this.#ws.send(JSON.stringify({ message }));
    const frame = await this.next(timeoutMs);
    const elapsed = performance.now() - started;
    if (typeof frame.message !== "string") throw new Error(`${this.userId}: the turn failed: ${JSON.stringify(frame)}`);
    return elapsed;
  }

  /** Closes and waits until the server has seen the close. */
  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    this.#ws.close();
    const timer = setTimeout(() => this.terminate(), 5000);
    await this.#closed;
    clearTimeout(timer);
  }

  terminate(): void {
    this.#ws.terminate();
  }
}

/** Connects users in batches (a thousand simultaneous handshakes would only measure the backlog). */
export async function connectMany(baseWsUrl: string, userIds: string[], batch = 50): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  try {
    for (let at = 0; at < userIds.length; at += batch) {
      clients.push(...(await Promise.all(userIds.slice(at, at + batch).map((id) => BenchClient.connect(baseWsUrl, id)))));
    }
  } catch (error) {
    for (const client of clients) client.terminate();
    throw error;
  }
  return clients;
}

export async function closeAll(clients: readonly BenchClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}

/** Every client does `turns` turns back to back; all clients at once. Returns every duration. */
export async function closedLoop(clients: readonly BenchClient[], turns: number, message: string): Promise<number[]> {
  const durations: number[] = [];
  await Promise.all(
    clients.map(async (client) => {
      for (let n = 0; n < turns; n++) durations.push(await client.turn(message));
    }),
  );
  return durations;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile (q in 0..1) of unsorted samples. */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 0.5);
}

export function summarize(samples: readonly number[]): Summary {
  return {
    n: samples.length,
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    mean: samples.reduce((sum, value) => sum + value, 0) / Math.max(1, samples.length),
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}
