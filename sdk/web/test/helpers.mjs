// Fakes for the SDK's surroundings: a clock, timers, fetch, and a media element.
export function fakeEnv({ responses = [] } = {}) {
  const env = {
    t: 0,
    wall: Date.UTC(2026, 0, 1),
    timers: [],
    requests: [],
    beacons: [],
    responses: [...responses],
    now: () => env.t,
    wallNow: () => env.wall + env.t,
    uuid: (() => { let n = 0; return () => `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`; })(),
    random: () => 0.5,
    setTimeout: (fn, ms) => { env.timers.push({ at: env.t + ms, fn, every: 0 }); return env.timers.length; },
    setInterval: (fn, ms) => { env.timers.push({ at: env.t + ms, fn, every: ms }); return env.timers.length; },
    clearInterval: (id) => { env.timers[id - 1] = null; },
    fetch: async (url, init) => {
      env.requests.push({ url, ...init, events: JSON.parse(init.body) });
      const r = env.responses.shift() ?? { status: 200 };
      if (r.throw) throw new TypeError("network down");
      return { status: r.status, headers: { get: (h) => (r.headers ?? {})[h] ?? null } };
    },
    sendBeacon: (url, blob) => { env.beacons.push({ url, blob }); return true; },
  };
  return env;
}

/** Advance the fake clock, running due timers, and let promises settle. */
export async function advance(env, ms) {
  const end = env.t + ms;
  for (;;) {
    await settle();
    const due = env.timers
      .map((x, i) => [x, i])
      .filter(([x]) => x && x.at <= end)
      .sort((a, b) => a[0].at - b[0].at)[0];
    if (!due) break;
    const [timer, i] = due;
    env.t = Math.max(env.t, timer.at);
    if (timer.every) timer.at += timer.every;
    else env.timers[i] = null;
    timer.fn();
  }
  env.t = end;
  await settle();
}

export async function settle() {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

export class FakeMedia extends EventTarget {
  constructor() {
    super();
    this.currentTime = 0;
    this.ended = false;
    this.paused = true;
    this.error = null;
    this.buffered = { length: 1, start: () => 0, end: () => this.currentTime + 2 };
  }
  fire(type) {
    if (type === "playing" || type === "play") this.paused = false;
    if (type === "pause" || type === "ended") this.paused = true;
    this.dispatchEvent(new Event(type));
  }
}

export class FakeHls {
  constructor(levels) { this.levels = levels.map((k) => ({ bitrate: k * 1000 })); this.handlers = {}; this.bandwidthEstimate = 800000; }
  on(e, fn) { (this.handlers[e] ||= []).push(fn); }
  emit(e, d) { for (const fn of this.handlers[e] || []) fn(e, d); }
}
export const Hls = { Events: { LEVEL_SWITCHED: "hlsLevelSwitched", ERROR: "hlsError" } };

export function sentEvents(env) {
  return env.requests.flatMap((r) => r.events);
}
