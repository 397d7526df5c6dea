import test from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_RETRY, nextDelayMs, parseRetryAfter, isRetryable } from "../dist/streamwatch.esm.js";

test("Retry-After in seconds and as an HTTP date", () => {
  assert.equal(parseRetryAfter("3", 0), 3000);
  assert.equal(parseRetryAfter("0.5", 0), 500);
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 12:00:07 GMT", now), 7000);
  assert.equal(parseRetryAfter("soon", now), null);
  assert.equal(parseRetryAfter(null, now), null);
});

test("Retry-After wins over the backoff, capped; attempts run out", () => {
  const p = { ...DEFAULT_RETRY, maxAttempts: 3, maxDelayMs: 10_000 };
  assert.equal(nextDelayMs(p, 1, 4000), 4000);
  assert.equal(nextDelayMs(p, 1, 99_000), 10_000);
  assert.equal(nextDelayMs(p, 3, 1000), null);
});

test("backoff doubles with jitter in the upper half", () => {
  const p = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1e9 };
  assert.equal(nextDelayMs(p, 1, null, () => 0), 50);
  assert.equal(nextDelayMs(p, 1, null, () => 1), 100);
  assert.equal(nextDelayMs(p, 4, null, () => 1), 800);
});

test("only 429 and 503 are retryable statuses", () => {
  assert.ok(isRetryable(429) && isRetryable(503));
  assert.ok(!isRetryable(400) && !isRetryable(413) && !isRetryable(500));
});
