// The test and demo player page. Plays the local ladder through hls.js, dash.js or a bare
// <video>, reports with the streamwatch SDK or with the player's own CMCD v2 event mode,
// and keeps the page's own measurement of what happened (window.__measure), read from the
// video element and the player's API, independently of any reporting.
(function () {
  "use strict";
  const q = new URLSearchParams(location.search);
  const kind = q.get("player") || "hls";
  // Without `src`, each player plays the local ladder in its own format (dash.js was given
  // the HLS master it cannot play).
  const defaultSrc = {
    hls: "/m/demo/hls/master.m3u8",
    dash: "/m/demo/dash/manifest.mpd",
    video: "/m/demo/plain.mp4",
  };
  const cfg = {
    player: kind,
    src: q.get("src") || defaultSrc[kind] || defaultSrc.hls,
    report: q.get("report") || "both", // sdk | cmcd | both | none
    eventsUrl: q.get("events_url") || "/collector/v1/events",
    cmcdUrl: q.get("cmcd_url") || "/collector/v1/cmcd",
    session: q.get("session") || (crypto.randomUUID ? crypto.randomUUID() : String(Date.now())),
    member: q.has("member") ? q.get("member") : "demo-viewer",
    title: q.get("title") || "local-ladder",
    memberKey: q.get("member_key") || "sw-member",
    stopAfterS: Number(q.get("stop_after_s") || "0"),
    fastFail: q.get("fast_fail") === "1",
  };
  const video = document.getElementById("video");
  const stateEl = document.getElementById("state");

  // --- the page's own measurement ----------------------------------------------------
  const m = (window.__measure = {
    config: cfg, startupMs: null, rebufferCount: 0, rebufferMs: 0, downshifts: 0, upshifts: 0,
    avgBitrateKbps: null, playedMs: 0, fatalErrorCode: null, fatalErrorDetail: null,
    ended: false, stopped: false, bitrates: [], errors: [],
    // The media element's own events in order, so a test that disagrees with the player's
    // reports can show which stall or seek it was.
    mediaEvents: [],
  });
  let requestedAt = null, started = false, stallSince = null, seeking = false;
  let playingSince = null, kbps = null, weighted = 0;
  const now = () => performance.now();
  function closePlaying(t) {
    if (playingSince !== null && kbps !== null) {
      weighted += kbps * (t - playingSince);
      m.playedMs += t - playingSince;
      m.avgBitrateKbps = m.playedMs > 0 ? weighted / m.playedMs : kbps;
    }
    playingSince = null;
  }
  function setBitrate(newKbps) {
    if (newKbps == null || newKbps === kbps) return;
    const t = now();
    if (playingSince !== null) { closePlaying(t); playingSince = t; }
    if (kbps !== null) { if (newKbps < kbps) m.downshifts++; else m.upshifts++; }
    kbps = newKbps;
    m.bitrates.push([Date.now(), newKbps]);
  }
  // The rendition on screen, asked of the player's API (dash.js may announce the first one
  // only after the first frame).
  function currentKbps() {
    try {
      if (window.__hls) {
        const level = window.__hls.levels[window.__hls.currentLevel];
        return level ? Math.round(level.bitrate / 1000) : null;
      }
      if (window.__dash) {
        const r = window.__dash.getCurrentRepresentationForType("video");
        return r ? Math.round(r.bandwidth / 1000) : null;
      }
    } catch (e) { /* the player is not ready: unknown */ }
    return null;
  }
  video.addEventListener("playing", () => {
    const t = now();
    if (kbps === null) {
      kbps = currentKbps();
      if (kbps !== null) m.bitrates.push([Date.now(), kbps]);
    }
    if (!started) { started = true; m.startupMs = t - requestedAt; }
    if (stallSince !== null) { m.rebufferCount++; m.rebufferMs += t - stallSince; stallSince = null; }
    if (playingSince === null) playingSince = t;
  });
  video.addEventListener("waiting", () => {
    const t = now();
    closePlaying(t);
    if (started && !seeking && !video.ended && stallSince === null) stallSince = t;
  });
  video.addEventListener("seeking", () => { seeking = true; closePlaying(now()); });
  video.addEventListener("seeked", () => { seeking = false; });
  video.addEventListener("pause", () => closePlaying(now()));
  video.addEventListener("ended", () => { closePlaying(now()); m.ended = true; });
  for (const type of ["waiting", "playing", "seeking", "seeked", "ended"]) {
    video.addEventListener(type, () => {
      m.mediaEvents.push([Math.round(now()), type, Math.round(video.currentTime * 1000)]);
    });
  }

  function fatal(code, detail) {
    closePlaying(now());
    // A stall that ends in the failure is the failure, not a rebuffer the viewer got past.
    stallSince = null;
    if (m.fatalErrorCode === null) { m.fatalErrorCode = String(code); m.fatalErrorDetail = detail; }
  }

  // --- players ---------------------------------------------------------------------
  const cmcdEvents = ["ps", "e", "t", "bc"];
  function cmcdKeys() {
    // Every key the players know, plus our member custom key (custom keys are sent only
    // when listed).
    return ["br", "bl", "bs", "cid", "d", "dl", "ec", "e", "lb", "msd", "mtp", "nor", "ot", "pb",
      "pr", "rtp", "sf", "sid", "sn", "st", "sta", "su", "tb", "tpb", "ts", "v", cfg.memberKey];
  }
  const useSdk = cfg.report === "sdk" || cfg.report === "both";
  const useCmcd = cfg.report === "cmcd" || cfg.report === "both";
  // With both on, CMCD reports under a session id of their own: one playback must not be
  // counted twice.
  const cmcdSession = cfg.report === "both" ? `${cfg.session}-cmcd` : cfg.session;
  let player = null, sdk = null;
  function startHls() {
    const config = {
      maxBufferLength: 3, maxMaxBufferLength: 4, abrEwmaDefaultEstimate: 5e6,
      testBandwidth: false,
    };
    if (cfg.fastFail) {
      const policy = { maxTimeToFirstByteMs: 8000, maxLoadTimeMs: 20000,
        timeoutRetry: { maxNumRetry: 0, retryDelayMs: 0, maxRetryDelayMs: 0 },
        errorRetry: { maxNumRetry: 1, retryDelayMs: 200, maxRetryDelayMs: 200 } };
      config.fragLoadPolicy = { default: policy };
    }
    if (useCmcd) {
      config.cmcd = {
        version: 2, sessionId: cmcdSession, contentId: cfg.title,
        eventTargets: [{ url: cfg.cmcdUrl, events: cmcdEvents, interval: 2, batchSize: 1,
          includeKeys: cmcdKeys() }],
        reporterCallback: (r) => { if (cfg.member) r.updateCustomData({ [cfg.memberKey]: cfg.member }); },
      };
    }
    const hls = (player = new Hls(config));
    window.__hls = hls;
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => setBitrate(Math.round(hls.levels[d.level].bitrate / 1000)));
    hls.on(Hls.Events.ERROR, (_e, d) => {
      m.errors.push({ details: d.details, fatal: d.fatal, status: d.response && d.response.code });
      if (d.fatal) fatal(d.details, d.type);
    });
    hls.loadSource(cfg.src);
    hls.attachMedia(video);
    return hls;
  }
  function startDash() {
    const p = (player = dashjs.MediaPlayer().create());
    window.__dash = p;
    const settings = { streaming: {
      buffer: { bufferTimeDefault: 3, bufferTimeAtTopQuality: 3, bufferTimeAtTopQualityLongForm: 3,
        initialBufferLevel: NaN, stableBufferTime: 3,
        // Fast switching replaces buffered media after an up-switch. Under the throttle
        // (down, up, down within a second) it once left a hole at 12 s that dash.js 5.2
        // then "jumped" with a seek every 200 ms for over a minute, never playing on.
        fastSwitchEnabled: false },
      abr: { initialBitrate: { video: 5000 } },
    } };
    if (cfg.fastFail) {
      settings.streaming.retryAttempts = { MediaSegment: 1, InitializationSegment: 1 };
      settings.streaming.retryIntervals = { MediaSegment: 200, InitializationSegment: 200 };
    }
    if (useCmcd) {
      settings.streaming.cmcd = {
        enabled: true, version: 2, sid: cmcdSession, cid: cfg.title,
        eventTargets: [{ enabled: true, url: cfg.cmcdUrl, events: cmcdEvents, interval: 2,
          batchSize: 1, enabledKeys: cmcdKeys() }],
      };
    }
    p.updateSettings(settings);
    const E = dashjs.MediaPlayer.events;
    p.on(E.QUALITY_CHANGE_RENDERED, (e) => {
      if (e.mediaType === "video" && e.newRepresentation) setBitrate(Math.round(e.newRepresentation.bandwidth / 1000));
    });
    p.on(E.ERROR, (e) => {
      const code = e.error && e.error.code;
      m.errors.push({ code, message: e.error && e.error.message });
      // A codeless ERROR is dash.js reporting on a request of its own (a CMCD report the
      // collector refused, for instance), not a playback failure.
      if (code != null) fatal(code, e.error && e.error.message);
    });
    p.initialize(video, cfg.src, false);
    return p;
  }
  function startVideo() {
    video.src = cfg.src;
    video.addEventListener("error", () => video.error && fatal(video.error.code, video.error.message));
    return null;
  }

  function start() {
    if (useSdk && window.streamwatch) {
      sdk = window.streamwatch.createTracker({
        endpoint: cfg.eventsUrl, sessionId: cfg.session, titleId: cfg.title,
        memberId: cfg.member || undefined, appVersion: "player-page/1",
        dimensions: { page: "player", player: cfg.player },
        heartbeatIntervalMs: 2000, flushIntervalMs: 1000,
      });
      window.__sdk = sdk;
    }
    requestedAt = now();
    if (sdk) sdk.playRequested();
    const p = cfg.player === "dash" ? startDash() : cfg.player === "video" ? startVideo() : startHls();
    if (sdk) {
      if (cfg.player === "dash") sdk.attachDash(p, video, window.dashjs);
      else if (cfg.player === "hls") sdk.attachHls(p, video, window.Hls);
      else sdk.attachVideo(video);
    }
    video.play().catch(() => {});
    if (cfg.stopAfterS > 0) setTimeout(stop, cfg.stopAfterS * 1000);
  }
  // Ends the session as a viewer closing the player would: the SDK sends playback_end, the
  // player stops (hls.js/dash.js flush their CMCD reports when destroyed).
  function stop() {
    if (m.stopped) return;
    closePlaying(now());
    m.stopped = true;
    if (sdk) sdk.end(m.fatalErrorCode ? "error" : m.ended ? "completed" : "user_exit");
    try { video.pause(); } catch (e) { /* nothing to pause */ }
    if (player && player.destroy) player.destroy();
    else if (player && player.reset) player.reset();
  }
  window.__stop = stop;

  setInterval(() => {
    stateEl.textContent = [
      `player ${cfg.player}  reporting ${cfg.report}  session ${cfg.session}`,
      `member ${cfg.member || "(anonymous)"}  title ${cfg.title}`,
      `startup ${m.startupMs === null ? "-" : Math.round(m.startupMs) + " ms"}  ` +
        `rebuffers ${m.rebufferCount} (${Math.round(m.rebufferMs)} ms)  downshifts ${m.downshifts}`,
      `bitrate ${kbps === null ? "-" : kbps + " kbps"}  average ${m.avgBitrateKbps === null ? "-" : Math.round(m.avgBitrateKbps) + " kbps"}`,
      `fatal error ${m.fatalErrorCode || "none"}  ${m.ended ? "ended" : ""}`,
      "",
      cfg.member ? `In a few seconds: streamwatch support lookup ${cfg.member} --agent YOUR_NAME` +
        " (or the support console) shows this playback." : "",
    ].join("\n");
  }, 250);

  const lib = cfg.player === "dash" ? "/lib/dash.js" : cfg.player === "hls" ? "/lib/hls.js" : null;
  const libs = [lib, useSdk ? "/lib/streamwatch.js" : null].filter(Boolean);
  let pending = libs.length;
  if (!pending) start();
  for (const src of libs) {
    const s = document.createElement("script");
    s.src = src;
    s.onload = () => { if (--pending === 0) start(); };
    document.head.appendChild(s);
  }
})();
