/** When and how long to wait before sending a batch again: a policy object, not scattered sleeps. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** First backoff delay (ms); doubled per attempt, with jitter. */
  baseDelayMs: number;
  /** Longest wait (ms), Retry-After included. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/** Statuses worth retrying: the collector is busy (429) or Kafka is unavailable (503). */
export function isRetryable(status: number): boolean {
  return status === 429 || status === 503;
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; null when absent or bad. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | null {
  if (value == null || value.trim() === "") return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/**
 * The wait before attempt `attempt + 1` (attempt counts from 1), or null to give up.
 * Retry-After wins over the backoff when the server sends one (capped at maxDelayMs).
 */
export function nextDelayMs(
  policy: RetryPolicy,
  attempt: number,
  retryAfterMs: number | null,
  random: () => number = Math.random,
): number | null {
  if (attempt >= policy.maxAttempts) return null;
  if (retryAfterMs !== null) return Math.min(retryAfterMs, policy.maxDelayMs);
  const exp = policy.baseDelayMs * 2 ** (attempt - 1);
  // Full jitter in the upper half: spreads a crowd of players without ever retrying at once.
  return Math.min(policy.maxDelayMs, Math.round(exp / 2 + (random() * exp) / 2));
}
