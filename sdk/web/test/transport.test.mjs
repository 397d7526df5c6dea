import test from "node:test";
import assert from "node:assert/strict";
import { Transport, DEFAULT_RETRY } from "../dist/streamwatch.esm.js";
import { advance, fakeEnv } from "./helpers.mjs";

const opts = { endpoint: "http://c/v1/events", maxBatch: 2, maxQueue: 5, retry: DEFAULT_RETRY };

test("batches of maxBatch, one request in flight at a time", async () => {
  const env = fakeEnv();
  const t = new Transport(opts, env);
  for (let i = 0; i < 5; i++) t.enqueue({ i });
  t.flush();
  await advance(env, 0);
  assert.deepEqual(env.requests.map((r) => r.events.length), [2, 2, 1]);
  assert.equal(t.stats.sent, 5);
  assert.equal(env.requests[0].headers["Content-Type"], "application/json");
});

test("429 is retried after Retry-After, the same batch", async () => {
  const env = fakeEnv({ responses: [{ status: 429, headers: { "Retry-After": "3" } }, { status: 200 }] });
  const t = new Transport(opts, env);
  t.enqueue({ a: 1 });
  t.flush();
  await advance(env, 2999);
  assert.equal(env.requests.length, 1);
  t.flush(); // a flush while waiting does not jump the queue
  await advance(env, 0);
  assert.equal(env.requests.length, 1);
  await advance(env, 1);
  assert.equal(env.requests.length, 2);
  assert.deepEqual(env.requests[1].events, [{ a: 1 }]);
  assert.equal(t.stats.sent, 1);
  assert.equal(t.stats.retries, 1);
});

test("503 without Retry-After and network failures back off, then give up", async () => {
  const env = fakeEnv({ responses: [{ status: 503 }, { throw: true }, { status: 503 }, { status: 503 }, { status: 503 }] });
  const t = new Transport({ ...opts, retry: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000 } }, env);
  t.enqueue({ a: 1 });
  t.flush();
  await advance(env, 10_000);
  assert.equal(env.requests.length, 5);
  assert.equal(t.stats.dropped, 1);
  assert.equal(t.stats.sent, 0);
});

test("a 400 is not retried (the collector has dead-lettered what it could not take)", async () => {
  const env = fakeEnv({ responses: [{ status: 400 }] });
  const t = new Transport(opts, env);
  t.enqueue({ a: 1 });
  t.flush();
  await advance(env, 60_000);
  assert.equal(env.requests.length, 1);
  assert.equal(t.stats.dropped, 1);
});

test("hidden page: everything goes out with keepalive; a failing fetch falls back to sendBeacon", async () => {
  const env = fakeEnv({ responses: [{ status: 200 }, { throw: true }] });
  const t = new Transport(opts, env);
  for (let i = 0; i < 4; i++) t.enqueue({ i });
  t.flushOnHide();
  await advance(env, 0);
  assert.equal(env.requests.length, 2);
  assert.ok(env.requests.every((r) => r.keepalive === true));
  assert.equal(env.beacons.length, 1);
  assert.equal(t.pending, 0);
});

test("the queue is bounded: the oldest events are dropped first", () => {
  const env = fakeEnv();
  const t = new Transport(opts, env);
  for (let i = 0; i < 8; i++) t.enqueue({ i });
  assert.equal(t.pending, 5);
  assert.equal(t.stats.dropped, 3);
});
