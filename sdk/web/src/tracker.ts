import { PlayerKind, catalogCode, categoryOf } from "./errors";
import { DEFAULT_TRANSPORT, Transport, TransportEnv } from "./transport";
import { DEFAULT_RETRY, RetryPolicy } from "./retry";

export const SCHEMA_VERSION = 2;
export const MAX_DIMENSIONS = 10;

export interface TrackerOptions {
  /** The collector's `POST /v1/events` URL. */
  endpoint: string;
  titleId: string;
  sessionId?: string;
  memberId?: string;
  profileId?: string;
  /** A stable id of this device; by default one kept in localStorage. */
  deviceId?: string;
  appVersion?: string;
  /** Up to 10 custom dimensions (experiment, variant, ...). */
  dimensions?: Record<string, string>;
  heartbeatIntervalMs?: number;
  flushIntervalMs?: number;
  maxBatch?: number;
  retry?: Partial<RetryPolicy>;
  /** For tests and unusual pages; the browser's by default. */
  env?: Partial<TrackerEnv>;
}

export interface TrackerEnv extends TransportEnv {
  setInterval: (fn: () => void, ms: number) => unknown;
  clearInterval: (id: unknown) => void;
  /** Wall clock (epoch ms) for event_time. */
  wallNow: () => number;
  uuid: () => string;
  document?: { visibilityState?: string; addEventListener(t: string, f: () => void): void };
  window?: { addEventListener(t: string, f: () => void): void };
}

/** The media element events the tracker listens to (an HTMLVideoElement has them all). */
export interface MediaLike {
  addEventListener(type: string, fn: () => void): void;
  removeEventListener(type: string, fn: () => void): void;
  currentTime: number;
  ended: boolean;
  paused: boolean;
  buffered?: { length: number; end(i: number): number; start(i: number): number };
  error?: { code: number; message?: string } | null;
}

type Payload = Record<string, unknown>;
type ExitReason = "completed" | "user_exit" | "error" | "abandoned_startup" | "timeout";

function browserEnv(): TrackerEnv {
  const g = globalThis as unknown as Record<string, unknown> & typeof globalThis;
  const nav = g.navigator as Navigator | undefined;
  return {
    fetch: typeof g.fetch === "function" ? g.fetch.bind(g) : undefined,
    sendBeacon: nav && typeof nav.sendBeacon === "function" ? nav.sendBeacon.bind(nav) : undefined,
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    setInterval: (fn, ms) => g.setInterval(fn, ms),
    clearInterval: (id) => g.clearInterval(id as number),
    now: () => g.performance.now(),
    wallNow: () => Date.now(),
    uuid: () => g.crypto.randomUUID(),
    document: (g.document as unknown as TrackerEnv["document"]) ?? undefined,
    window: (g.window as unknown as TrackerEnv["window"]) ?? undefined,
  };
}

function storedDeviceId(env: TrackerEnv): string {
  try {
    const ls = (globalThis as unknown as { localStorage?: Storage }).localStorage;
    if (!ls) return env.uuid();
    const have = ls.getItem("streamwatch.device_id");
    if (have) return have;
    const id = env.uuid();
    ls.setItem("streamwatch.device_id", id);
    return id;
  } catch {
    return env.uuid(); // storage blocked: a per-page id is still an id
  }
}

/**
 * One playback session's telemetry: the player's life as contract v2 events, batched to the
 * collector. Every handler is wrapped so that a bug here can never break playback.
 */
export class Tracker {
  readonly sessionId: string;
  readonly transport: Transport;
  private readonly env: TrackerEnv;
  private readonly base: Payload;
  private requestedAt: number | null = null;
  private started = false;
  private ended = false;
  private failed = false;
  private stallSince: number | null = null;
  private seeking = false;
  private seekFrom = 0;
  private playingSince: number | null = null;
  private watchedMs = 0;
  private kbps: number | null = null;
  private media: MediaLike | null = null;
  private throughput: () => number | null = () => null;
  private currentKbps: () => number | null = () => null;
  private timers: unknown[] = [];
  private detach: Array<() => void> = [];

  constructor(private readonly opts: TrackerOptions) {
    this.env = { ...browserEnv(), ...(opts.env ?? {}) } as TrackerEnv;
    this.sessionId = opts.sessionId ?? this.env.uuid();
    const dims = Object.entries(opts.dimensions ?? {});
    if (dims.length > MAX_DIMENSIONS) {
      throw new Error(`at most ${MAX_DIMENSIONS} custom dimensions, got ${dims.length}`);
    }
    const device: Payload = { device_id: opts.deviceId ?? storedDeviceId(this.env) };
    if (opts.appVersion) device.app_version = opts.appVersion;
    this.base = {
      schema_version: SCHEMA_VERSION,
      session_id: this.sessionId,
      title_id: opts.titleId,
      device,
      ...(opts.memberId ? { member_id: opts.memberId } : {}),
      ...(opts.profileId ? { profile_id: opts.profileId } : {}),
      ...(dims.length ? { dimensions: Object.fromEntries(dims.map(([k, v]) => [k, String(v)])) } : {}),
    };
    this.transport = new Transport(
      {
        ...DEFAULT_TRANSPORT,
        endpoint: opts.endpoint,
        maxBatch: opts.maxBatch ?? DEFAULT_TRANSPORT.maxBatch,
        retry: { ...DEFAULT_RETRY, ...(opts.retry ?? {}) },
      },
      this.env,
    );
    this.timers.push(this.env.setInterval(() => this.safe(() => this.transport.flush()), opts.flushIntervalMs ?? 2000));
    this.timers.push(this.env.setInterval(() => this.safe(() => this.heartbeat()), opts.heartbeatIntervalMs ?? 10_000));
    const hide = () => this.safe(() => this.transport.flushOnHide());
    this.env.document?.addEventListener("visibilitychange", () => {
      if (this.env.document?.visibilityState === "hidden") hide();
    });
    this.env.window?.addEventListener("pagehide", () => this.safe(() => {
      // The page is going: playback_end must leave with keepalive, not a cancellable fetch.
      this.finish("user_exit", false);
      this.transport.flushOnHide();
    }));
  }

  private safe(fn: () => void): void {
    try {
      fn();
    } catch {
      // Telemetry must never break the page or the player.
    }
  }

  private emit(type: string, payload: Payload, top: Payload = {}): void {
    this.transport.enqueue({
      ...this.base,
      ...top,
      event_id: this.env.uuid(),
      event_type: type,
      event_time: new Date(this.env.wallNow()).toISOString(),
      payload: { event_type: type, ...payload },
    });
  }

  /** The viewer asked to play (start of startup time). Call before the player loads. */
  playRequested(opts: { autoplay?: boolean } = {}): void {
    this.safe(() => {
      if (this.requestedAt !== null) return;
      this.requestedAt = this.env.now();
      this.emit("play_requested", { autoplay: !!opts.autoplay });
      this.transport.flush();
    });
  }

  /** Listen to a media element (the bare-<video> integration; the players' call this too). */
  attachVideo(media: MediaLike, opts: { reportMediaErrors?: boolean } = {}): void {
    this.media = media;
    const on = (type: string, fn: () => void) => {
      const h = () => this.safe(fn);
      media.addEventListener(type, h);
      this.detach.push(() => media.removeEventListener(type, h));
    };
    on("playing", () => this.onPlaying());
    on("waiting", () => this.onWaiting());
    on("seeking", () => this.onSeeking());
    on("seeked", () => { this.seeking = false; });
    on("pause", () => this.onPause());
    on("play", () => this.onPlay());
    on("ended", () => this.end("completed"));
    if (opts.reportMediaErrors !== false) {
      on("error", () => {
        const e = media.error;
        if (e) this.error("video", e.code, true, e.message ?? "");
      });
    }
  }

  /** hls.js: its media element, level switches (the rendition that plays) and errors. */
  attachHls(hls: HlsLike, media: MediaLike, Hls: { Events: Record<string, string> }): void {
    this.safe(() => {
      this.attachVideo(media, { reportMediaErrors: false });
      this.throughput = () => (hls.bandwidthEstimate > 0 ? Math.round(hls.bandwidthEstimate / 1000) : null);
      this.currentKbps = () => {
        const level = hls.levels[hls.currentLevel ?? -1];
        return level ? Math.round(level.bitrate / 1000) : null;
      };
      hls.on(Hls.Events.LEVEL_SWITCHED, (_e: unknown, d: { level: number }) =>
        this.safe(() => this.setBitrate(Math.round(hls.levels[d.level].bitrate / 1000))),
      );
      hls.on(Hls.Events.ERROR, (_e: unknown, d: HlsErrorData) =>
        this.safe(() => {
          // Non-fatal errors are the player recovering (a retry, a switch): not the viewer's.
          if (d.fatal) this.error("hls.js", d.details, true, `${d.type}: ${d.details}`, d.response?.code);
        }),
      );
    });
  }

  /** dash.js: its media element, renditions rendered and errors. */
  attachDash(player: DashLike, media: MediaLike, dashjs: { MediaPlayer: { events: Record<string, string> } }): void {
    this.safe(() => {
      this.attachVideo(media, { reportMediaErrors: false });
      const E = dashjs.MediaPlayer.events;
      this.throughput = () => {
        const t = player.getAverageThroughput?.("video");
        return typeof t === "number" && t > 0 ? Math.round(t) : null;
      };
      this.currentKbps = () => {
        const r = player.getCurrentRepresentationForType?.("video");
        return r && r.bandwidth > 0 ? Math.round(r.bandwidth / 1000) : null;
      };
      player.on(E.QUALITY_CHANGE_RENDERED, (e: DashQualityEvent) =>
        this.safe(() => {
          if (e.mediaType === "video" && e.newRepresentation) this.setBitrate(Math.round(e.newRepresentation.bandwidth / 1000));
        }),
      );
      // dash.js raises ERROR only for what it cannot recover from.
      player.on(E.ERROR, (e: DashErrorEvent) =>
        this.safe(() => {
          const code = e.error?.code;
          // A codeless ERROR is about a request of dash.js's own (a CMCD report), not playback.
          if (code === undefined || code === null) return;
          this.error("dash.js", code, true, `dash.js ${code}: ${e.error?.message ?? ""}`.slice(0, 500));
        }),
      );
    });
  }

  /** A player error, with the player's own code mapped to the catalog. */
  error(player: PlayerKind, code: string | number, fatal: boolean, message = "", httpStatus?: number): void {
    this.safe(() => {
      if (this.ended || (fatal && this.failed)) return;
      const catalog = catalogCode(player, code);
      const payload: Payload = {
        code: catalog,
        category: categoryOf(catalog),
        severity: fatal ? "fatal" : "warning",
        message: `${player} ${code}${message ? ` (${message})` : ""}`.slice(0, 2048),
      };
      if (httpStatus && httpStatus >= 100 && httpStatus <= 599) payload.http_status = httpStatus;
      if (fatal) {
        this.failed = true;
        this.closePlaying();
        // A stall that ends in a failure is the failure, not a rebuffer the viewer got past.
        this.stallSince = null;
      }
      // The player's own code travels beside the payload (the collector keeps it in `extra`).
      this.emit("error", payload, { player, player_error_code: String(code) });
      if (fatal) this.transport.flush();
    });
  }

  /** The session is over: playback_end with the watched time, and everything sent. */
  end(reason: ExitReason = "user_exit"): void {
    this.finish(reason, true);
  }

  private finish(reason: ExitReason, flush: boolean): void {
    this.safe(() => {
      if (this.ended) return;
      this.closePlaying();
      if (!this.started && !this.failed && reason === "user_exit") reason = "abandoned_startup";
      if (this.failed && reason === "user_exit") reason = "error";
      this.ended = true;
      this.emit("playback_end", { watched_ms: Math.round(this.watchedMs), exit_reason: reason });
      for (const t of this.timers) this.env.clearInterval(t);
      for (const d of this.detach) d();
      if (flush) this.transport.flush();
    });
  }

  private bufferMs(): number {
    const m = this.media;
    if (!m?.buffered) return 0;
    for (let i = 0; i < m.buffered.length; i++) {
      if (m.buffered.start(i) <= m.currentTime && m.currentTime <= m.buffered.end(i)) {
        return Math.max(0, Math.round((m.buffered.end(i) - m.currentTime) * 1000));
      }
    }
    return 0;
  }

  private heartbeat(): void {
    if (!this.started || this.ended || this.failed) return;
    if (this.kbps === null) this.kbps = this.currentKbps();
    // "playing" is the viewer's intent (not paused); a stall is reported by rebuffer events.
    const playing = !(this.media?.paused ?? false);
    this.emit("heartbeat", {
      bitrate_kbps: this.kbps,
      buffer_ms: this.bufferMs(),
      throughput_kbps: this.throughput(),
      position_ms: Math.round((this.media?.currentTime ?? 0) * 1000),
      playing,
    });
  }

  private setBitrate(kbps: number): void {
    if (this.ended || kbps === this.kbps) return;
    const before = this.kbps;
    this.kbps = kbps;
    // Before the first frame the rendition is just the starting one, not a change.
    if (this.started && before !== null) this.emit("bitrate_change", { from_kbps: before, to_kbps: kbps });
    // Known only after the first frame (dash.js may say so late): a sample, not a shift.
    else if (this.started) this.heartbeat();
  }

  private closePlaying(): void {
    if (this.playingSince !== null) {
      this.watchedMs += this.env.now() - this.playingSince;
      this.playingSince = null;
    }
  }

  private onPlaying(): void {
    if (this.ended || this.failed) return;
    const t = this.env.now();
    if (!this.started) {
      this.started = true;
      const startup = this.requestedAt === null ? 0 : Math.round(t - this.requestedAt);
      if (this.kbps === null) this.kbps = this.currentKbps();
      // Unknown (a bare <video> does not say) is null, never a made-up 0.
      this.emit("first_frame", { startup_ms: startup, bitrate_kbps: this.kbps });
      this.transport.flush();
    } else if (this.stallSince !== null) {
      this.emit("rebuffer_end", { duration_ms: Math.round(t - this.stallSince) });
      this.stallSince = null;
    }
    if (this.playingSince === null) this.playingSince = t;
  }

  private onWaiting(): void {
    if (!this.started || this.ended || this.failed || this.seeking || this.media?.ended) return;
    this.closePlaying();
    if (this.stallSince === null) {
      this.stallSince = this.env.now();
      this.emit("rebuffer_start", { position_ms: Math.round((this.media?.currentTime ?? 0) * 1000) });
    }
  }

  private onSeeking(): void {
    if (!this.started || this.ended) return;
    this.seeking = true;
    this.closePlaying();
    const to = Math.round((this.media?.currentTime ?? 0) * 1000);
    this.emit("seek", { from_ms: this.seekFrom, to_ms: to });
  }

  private onPause(): void {
    if (!this.started || this.ended || this.failed || this.media?.ended) return;
    this.seekFrom = Math.round((this.media?.currentTime ?? 0) * 1000);
    this.closePlaying();
    this.emit("pause", { position_ms: this.seekFrom });
  }

  private onPlay(): void {
    if (!this.started || this.ended || this.failed) return;
    this.emit("resume", {});
  }
}

export interface HlsLike {
  on(event: string, fn: (e: any, d: any) => void): void;
  levels: Array<{ bitrate: number }>;
  currentLevel?: number;
  bandwidthEstimate: number;
}
export interface HlsErrorData {
  fatal: boolean;
  details: string;
  type: string;
  response?: { code?: number };
}
export interface DashLike {
  on(event: string, fn: (e: any) => void): void;
  getAverageThroughput?(type: string): number;
  getCurrentRepresentationForType?(type: string): { bandwidth: number } | null;
}
export interface DashQualityEvent {
  mediaType: string;
  newRepresentation?: { bandwidth: number };
}
export interface DashErrorEvent {
  error?: { code?: number | string; message?: string };
}
