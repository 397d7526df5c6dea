/**
 * streamwatch web SDK: playback telemetry from hls.js, dash.js and a bare <video>, batched
 * to a streamwatch collector's `POST /v1/events` (contract v2).
 *
 *   const t = streamwatch.createTracker({ endpoint, titleId, memberId });
 *   t.playRequested();
 *   t.attachHls(hls, video, Hls);   // or attachDash(player, video, dashjs) / attachVideo(video)
 */
import { Tracker, TrackerOptions } from "./tracker";

export { Tracker, SCHEMA_VERSION, MAX_DIMENSIONS } from "./tracker";
export type { TrackerOptions, TrackerEnv, MediaLike } from "./tracker";
export { Transport } from "./transport";
export { DEFAULT_RETRY, nextDelayMs, parseRetryAfter, isRetryable } from "./retry";
export type { RetryPolicy } from "./retry";
export { catalogCode, categoryOf } from "./errors";

/** A tracker for one playback session. */
export function createTracker(options: TrackerOptions): Tracker {
  return new Tracker(options);
}
