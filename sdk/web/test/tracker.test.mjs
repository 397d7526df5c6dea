import test from "node:test";
import assert from "node:assert/strict";
import { createTracker, catalogCode, categoryOf } from "../dist/streamwatch.esm.js";
import { FakeHls, FakeMedia, Hls, advance, fakeEnv, sentEvents } from "./helpers.mjs";

function setup(extra = {}) {
  const env = fakeEnv();
  const t = createTracker({
    endpoint: "http://c/v1/events", titleId: "title-1", sessionId: "s-1", memberId: "m-1",
    deviceId: "d-1", appVersion: "web/1", dimensions: { experiment: "e1" },
    heartbeatIntervalMs: 1000, flushIntervalMs: 500, env, ...extra,
  });
  return { env, t, media: new FakeMedia() };
}

test("envelope: contract v2, ids, dimensions; no network facts (the collector derives them)", async () => {
  const { env, t } = setup();
  t.playRequested();
  await advance(env, 0);
  const [e] = sentEvents(env);
  assert.equal(e.schema_version, 2);
  assert.equal(e.event_type, "play_requested");
  assert.equal(e.payload.event_type, "play_requested");
  assert.deepEqual([e.session_id, e.member_id, e.title_id], ["s-1", "m-1", "title-1"]);
  assert.deepEqual(e.device, { device_id: "d-1", app_version: "web/1" });
  assert.deepEqual(e.dimensions, { experiment: "e1" });
  assert.equal(e.network, undefined);
  assert.equal(e.event_time, "2026-01-01T00:00:00.000Z");
});

test("hls.js session: startup, rebuffer, bitrate change, fatal error, end", async () => {
  const { env, t, media } = setup();
  const hls = new FakeHls([165, 440, 1100]);
  t.playRequested();
  t.attachHls(hls, media, Hls);
  hls.emit(Hls.Events.LEVEL_SWITCHED, { level: 2 }); // the starting rendition: no change event
  env.t = 1234;
  media.fire("playing");
  env.t = 3000;
  media.fire("waiting");
  env.t = 3500;
  hls.emit(Hls.Events.LEVEL_SWITCHED, { level: 0 });
  env.t = 4100;
  media.fire("playing");
  env.t = 5000;
  hls.emit(Hls.Events.ERROR, { fatal: false, details: "fragLoadError", type: "networkError" });
  hls.emit(Hls.Events.ERROR, { fatal: true, details: "fragLoadError", type: "networkError", response: { code: 404 } });
  t.end();
  await advance(env, 1000);
  const ev = sentEvents(env);
  const types = ev.map((e) => e.event_type);
  assert.deepEqual(types.filter((x) => x !== "heartbeat"), [
    "play_requested", "first_frame", "rebuffer_start", "bitrate_change", "rebuffer_end", "error", "playback_end",
  ]);
  const by = (type) => ev.find((e) => e.event_type === type).payload;
  assert.deepEqual([by("first_frame").startup_ms, by("first_frame").bitrate_kbps], [1234, 1100]);
  assert.equal(by("rebuffer_end").duration_ms, 1100);
  assert.deepEqual([by("bitrate_change").from_kbps, by("bitrate_change").to_kbps], [1100, 165]);
  const err = by("error");
  assert.deepEqual(
    [err.code, err.category, err.severity, err.http_status],
    ["HLS-3001", "cdn", "fatal", 404],
  );
  const envelope = ev.find((e) => e.event_type === "error");
  assert.deepEqual([envelope.player, envelope.player_error_code], ["hls.js", "fragLoadError"]);
  // Played 1234..3000 and 4100..5000: the fatal error stops the clock.
  assert.equal(by("playback_end").watched_ms, 1766 + 900);
  assert.equal(by("playback_end").exit_reason, "error");
});

test("a seek is not a rebuffer; pause and resume are reported", async () => {
  const { env, t, media } = setup();
  t.playRequested();
  t.attachVideo(media);
  media.fire("playing");
  media.currentTime = 4;
  media.fire("pause");
  media.fire("play");
  media.fire("seeking");
  media.fire("waiting");
  media.fire("seeked");
  media.fire("playing");
  t.end();
  await advance(env, 1000);
  const types = sentEvents(env).map((e) => e.event_type).filter((x) => x !== "heartbeat");
  assert.deepEqual(types, ["play_requested", "first_frame", "pause", "resume", "seek", "playback_end"]);
});

test("the video's end ends the session once; heartbeats carry bitrate, buffer and throughput", async () => {
  const { env, t, media } = setup();
  const hls = new FakeHls([400]);
  t.playRequested();
  t.attachHls(hls, media, Hls);
  hls.emit(Hls.Events.LEVEL_SWITCHED, { level: 0 });
  media.fire("playing");
  media.currentTime = 1.5;
  await advance(env, 1000);
  media.ended = true;
  media.fire("ended");
  t.end("user_exit");
  await advance(env, 3000);
  const ev = sentEvents(env);
  const hb = ev.find((e) => e.event_type === "heartbeat").payload;
  assert.deepEqual(
    [hb.bitrate_kbps, hb.buffer_ms, hb.throughput_kbps, hb.position_ms, hb.playing],
    [400, 2000, 800, 1500, true],
  );
  const ends = ev.filter((e) => e.event_type === "playback_end");
  assert.equal(ends.length, 1);
  assert.equal(ends[0].payload.exit_reason, "completed");
  assert.equal(ev.filter((e) => e.event_type === "heartbeat").length, 1); // none after the end
});

test("a stall is not a pause: heartbeats during a rebuffer still say playing", async () => {
  const { env, t, media } = setup();
  const hls = new FakeHls([400]);
  t.playRequested();
  t.attachHls(hls, media, Hls);
  hls.emit(Hls.Events.LEVEL_SWITCHED, { level: 0 });
  media.fire("playing");
  media.fire("waiting");
  await advance(env, 1500);
  const hb = sentEvents(env).find((e) => e.event_type === "heartbeat").payload;
  assert.equal(hb.playing, true);
});

test("a bitrate first known after the first frame is asked of the player", async () => {
  const { env, t, media } = setup();
  const player = {
    handlers: {}, on(e, fn) { this.handlers[e] = fn; },
    getCurrentRepresentationForType: () => ({ bandwidth: 1000000 }),
  };
  const dashjs = { MediaPlayer: { events: { QUALITY_CHANGE_RENDERED: "q", ERROR: "err" } } };
  t.playRequested();
  t.attachDash(player, media, dashjs);
  media.fire("playing");
  player.handlers.err({ error: { code: 27, message: "seg-2-004.m4s is not available" } });
  await advance(env, 600);
  const ev = sentEvents(env);
  assert.equal(ev.find((e) => e.event_type === "first_frame").payload.bitrate_kbps, 1000);
  const err = ev.find((e) => e.event_type === "error");
  assert.deepEqual([err.payload.code, err.payload.category, err.player_error_code], ["DASH-0027", "cdn", "27"]);
});

test("a bare <video>: bitrate and throughput unknown (null), its MediaError mapped", async () => {
  const { env, t, media } = setup();
  t.playRequested();
  t.attachVideo(media);
  media.fire("playing");
  await advance(env, 1500);
  media.error = { code: 2, message: "network" };
  media.fire("error");
  await advance(env, 600);
  const ev = sentEvents(env);
  assert.equal(ev.find((e) => e.event_type === "first_frame").payload.bitrate_kbps, null);
  const hb = ev.find((e) => e.event_type === "heartbeat").payload;
  assert.deepEqual([hb.bitrate_kbps, hb.throughput_kbps], [null, null]);
  const err = ev.find((e) => e.event_type === "error");
  assert.deepEqual([err.payload.code, err.payload.severity, err.player_error_code], ["VID-0002", "fatal", "2"]);
});

test("dash.js codes and bare <video> MediaErrors map into the catalog", () => {
  assert.equal(catalogCode("dash.js", 27), "DASH-0027");
  assert.equal(categoryOf("DASH-0027"), "cdn");
  assert.equal(catalogCode("dash.js", 9999), "DASH-0000");
  assert.equal(catalogCode("hls.js", "somethingNew"), "HLS-0000");
  assert.equal(catalogCode("video", 2), "VID-0002");
  assert.equal(categoryOf("VID-0002"), "network");
});

test("a throwing collector or handler never reaches the page", async () => {
  const env = fakeEnv();
  env.fetch = () => { throw new Error("boom"); };
  const t = createTracker({ endpoint: "http://c/v1/events", titleId: "t", env, flushIntervalMs: 500 });
  const media = new FakeMedia();
  t.playRequested();
  t.attachHls({ on() { throw new Error("not a player"); } }, media, Hls);
  media.fire("playing");
  await advance(env, 5000);
  assert.ok(t.transport.stats.retries >= 1);
});

test("a hidden page sends what is queued with keepalive; leaving it ends the session", async () => {
  const env = fakeEnv();
  const doc = new EventTarget();
  doc.visibilityState = "visible";
  const win = new EventTarget();
  env.document = doc;
  env.window = win;
  const t = createTracker({ endpoint: "http://c/v1/events", titleId: "t", env, flushIntervalMs: 60_000 });
  const media = new FakeMedia();
  t.attachVideo(media);
  t.playRequested();
  await advance(env, 0);
  media.fire("playing");
  await advance(env, 0);
  media.fire("pause"); // queued for the next periodic flush, a minute away
  doc.visibilityState = "hidden";
  doc.dispatchEvent(new Event("visibilitychange"));
  await advance(env, 0);
  const hidden = env.requests.filter((r) => r.keepalive);
  assert.deepEqual(hidden.flatMap((r) => r.events.map((e) => e.event_type)), ["pause"]);
  win.dispatchEvent(new Event("pagehide"));
  await advance(env, 0);
  const last = env.requests.filter((r) => r.keepalive).flatMap((r) => r.events);
  assert.equal(last.at(-1).event_type, "playback_end");
  assert.equal(last.at(-1).payload.exit_reason, "user_exit");
});

test("more than 10 custom dimensions is a configuration error", () => {
  const dims = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`d${i}`, "x"]));
  assert.throws(() => setup({ dimensions: dims }), /at most 10/);
});
