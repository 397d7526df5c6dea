import { DEFAULT_RETRY, RetryPolicy, isRetryable, nextDelayMs, parseRetryAfter } from "./retry";

/** What the transport needs from its surroundings (the browser's, or a test's fakes). */
export interface TransportEnv {
  fetch?: typeof fetch;
  sendBeacon?: (url: string, data: Blob) => boolean;
  setTimeout: (fn: () => void, ms: number) => unknown;
  now: () => number;
  random?: () => number;
}

export interface TransportOptions {
  endpoint: string;
  maxBatch: number;
  /** Events kept at most while the collector is unreachable; the oldest are dropped first. */
  maxQueue: number;
  retry: RetryPolicy;
}

export const DEFAULT_TRANSPORT: Omit<TransportOptions, "endpoint"> = {
  maxBatch: 50,
  maxQueue: 1000,
  retry: DEFAULT_RETRY,
};

export interface TransportStats {
  sent: number;
  batches: number;
  retries: number;
  dropped: number;
  lastStatus: number | null;
}

/**
 * Batches events to `POST /v1/events`. Nothing here ever throws into the page or waits on
 * the player: sends are fire-and-forget promises, failures are counted, 429/503 are retried
 * after Retry-After (or a jittered backoff), other 4xx are dropped (retrying cannot help).
 */
export class Transport {
  readonly stats: TransportStats = { sent: 0, batches: 0, retries: 0, dropped: 0, lastStatus: null };
  private queue: object[] = [];
  private inFlight = false;
  private waitingUntil = 0;

  constructor(
    private readonly opts: TransportOptions,
    private readonly env: TransportEnv,
  ) {}

  /** Queue one event (sent on the next flush). */
  enqueue(event: object): void {
    this.queue.push(event);
    const over = this.queue.length - this.opts.maxQueue;
    if (over > 0) {
      this.queue.splice(0, over);
      this.stats.dropped += over;
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Send what is queued (one batch at a time; the next starts when it is answered). */
  flush(): void {
    if (this.inFlight || this.queue.length === 0 || this.env.now() < this.waitingUntil) return;
    const batch = this.queue.splice(0, this.opts.maxBatch);
    this.inFlight = true;
    void this.send(batch, 1, false);
  }

  /**
   * The page is going away (hidden or unloading): send everything now with keepalive (or
   * sendBeacon), without waiting for answers or retries.
   */
  flushOnHide(): void {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      const body = JSON.stringify(batch);
      this.stats.batches++;
      if (this.env.fetch) {
        try {
          void this.env
            .fetch(this.opts.endpoint, {
              method: "POST",
              body,
              keepalive: true,
              headers: { "Content-Type": "application/json" },
            })
            .then((r) => this.counted(r.status, batch.length), () => this.beacon(body, batch.length));
          continue;
        } catch {
          // fall through to the beacon
        }
      }
      this.beacon(body, batch.length);
    }
  }

  private beacon(body: string, n: number): void {
    const ok = this.env.sendBeacon?.(this.opts.endpoint, new Blob([body], { type: "application/json" }));
    if (ok) this.stats.sent += n;
    else this.stats.dropped += n;
  }

  private counted(status: number, n: number): void {
    this.stats.lastStatus = status;
    if (status >= 200 && status < 300) this.stats.sent += n;
    else this.stats.dropped += n;
  }

  private async send(batch: object[], attempt: number, keepalive: boolean): Promise<void> {
    let status = 0;
    let retryAfter: string | null = null;
    try {
      if (!this.env.fetch) throw new Error("no fetch");
      this.stats.batches++;
      const r = await this.env.fetch(this.opts.endpoint, {
        method: "POST",
        body: JSON.stringify(batch),
        keepalive,
        headers: { "Content-Type": "application/json" },
      });
      status = r.status;
      retryAfter = r.headers.get("Retry-After");
    } catch {
      status = 0; // network failure: retried like a 503
    }
    this.stats.lastStatus = status;
    if (status >= 200 && status < 300) {
      this.stats.sent += batch.length;
      this.done();
      return;
    }
    if (status === 0 || isRetryable(status)) {
      const wait = nextDelayMs(
        this.opts.retry,
        attempt,
        parseRetryAfter(retryAfter, Date.now()),
        this.env.random,
      );
      if (wait !== null) {
        this.stats.retries++;
        this.waitingUntil = this.env.now() + wait;
        this.env.setTimeout(() => void this.send(batch, attempt + 1, keepalive), wait);
        return;
      }
    }
    this.stats.dropped += batch.length;
    this.done();
  }

  private done(): void {
    this.inFlight = false;
    this.waitingUntil = 0;
    this.flush();
  }
}
