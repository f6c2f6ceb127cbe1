// vstage live player: a persona's live stream over WebRTC, drawn with its transparency.
//
// The server sends one VP8 video track and one Opus audio track per persona. Each video frame
// packs the avatar twice side by side (width 2*W): the left half is its colour, the right half
// its alpha as grey. A hidden <video> plays the MediaStream (so the audio plays and WebRTC's
// lip sync applies); every decoded frame (requestVideoFrameCallback) is drawn into a WebGL
// canvas that puts the alpha back (alpha.js), so the overlay stays transparent around the avatar.
// A lost connection is retried with backoff; when WebRTC is missing, switched off on the
// server, or keeps failing, the page falls back to the clip player (player.js) and says so.
//
// Test and benchmark hooks live on `window.__live` (see `hooks` at the end).
"use strict";

(function () {
  const { api } = window.vstage;
  const params = new URLSearchParams(location.search);
  const FORCED_CLIPS = params.get("mode") === "clips";
  const SERIES_KEPT = 15000; // per-frame records kept for tests (10 min at 25 fps)
  const FAILS_BEFORE_FALLBACK = 3;
  const RETRY_FALLBACK_MS = 20000; // how often a page in fallback tries live again
  const STALL_MS = 3000; // connected but no frame this long: reconnect
  const ICE_GATHER_MS = 3000;
  // Per-frame measurements cost a small readback per frame: on for automation (tests, the
  // benchmark) or with &probe=1, off in an overlay that runs all show.
  let measuring = params.get("probe") === "1" || navigator.webdriver === true;

  // The colour|alpha unpacker (alpha.js, an ES module shared with the /talk page). It is loaded
  // while the page asks its first offer; a player draws nothing until it is there.
  let PackedCanvas = null;
  const packedReady = import("/static/alpha.js").then((mod) => {
    PackedCanvas = mod.PackedCanvas;
    return PackedCanvas;
  });

  // Per-frame measurements for tests and the benchmark: brightness and change of a probe
  // region (the mouth, set by the caller) and of the whole picture, and the audio level.
  class FrameProbe {
    constructor() {
      this.canvas = document.createElement("canvas");
      this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
      this.box = null; // [x, y, w, h] in avatar pixels (colour half); null: the whole avatar
      this.prevBox = null;
      this.prevWhole = null;
    }

    setBox(box) {
      this.box = box;
      this.prevBox = null;
    }

    // Mean luma (0..255) and mean absolute luma change since the previous frame, over a
    // region of the colour half scaled to at most 32x32 pixels.
    _region(video, sx, sy, sw, sh, prev) {
      const w = Math.max(1, Math.min(32, Math.round(sw)));
      const h = Math.max(1, Math.min(32, Math.round(sh)));
      if (this.canvas.width !== w || this.canvas.height !== h) {
        this.canvas.width = w;
        this.canvas.height = h;
      }
      this.ctx.drawImage(video, sx, sy, sw, sh, 0, 0, w, h);
      const px = this.ctx.getImageData(0, 0, w, h).data;
      const luma = new Float32Array(w * h);
      let sum = 0;
      let diff = 0;
      for (let i = 0; i < w * h; i++) {
        luma[i] = 0.299 * px[4 * i] + 0.587 * px[4 * i + 1] + 0.114 * px[4 * i + 2];
        sum += luma[i];
        if (prev && prev.length === luma.length) diff += Math.abs(luma[i] - prev[i]);
      }
      return { luma, mean: sum / (w * h), diff: prev ? diff / (w * h) : 0 };
    }

    measure(video) {
      const w = Math.floor(video.videoWidth / 2);
      const h = video.videoHeight;
      const [bx, by, bw, bh] = this.box || [0, 0, w, h];
      const probe = this._region(video, bx, by, bw, bh, this.prevBox);
      this.prevBox = probe.luma;
      const whole = this._region(video, 0, 0, w, h, this.prevWhole);
      this.prevWhole = whole.luma;
      return { luma: probe.mean, diff: probe.diff, whole: whole.diff };
    }
  }

  function rmsOf(analyser, buf) {
    if (!analyser) return null;
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    return Math.sqrt(sum / buf.length);
  }

  function iceComplete(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((done) => {
      const timer = setTimeout(done, timeoutMs); // send what was gathered so far
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") {
          clearTimeout(timer);
          done();
        }
      });
    });
  }

  // One persona's live stream on a page. `state`: "connecting", "live", "retrying",
  // "fallback" (the clip player shows the persona), "off" (stopped).
  class LivePlayer {
    constructor(slot, persona, { onLive, onFallback } = {}) {
      this.slot = slot;
      this.persona = persona;
      this.onLive = onLive || (() => {});
      this.onFallback = onFallback || (() => {});
      this.canvas = document.createElement("canvas");
      this.canvas.className = "avatar-canvas";
      slot.insertBefore(this.canvas, slot.firstChild);
      this.video = document.createElement("video");
      // Kept in the layout (1 px, invisible): a video that is not rendered may get no frame
      // callbacks; its audio is the persona's voice and plays from here.
      this.video.className = "live-video";
      this.video.playsInline = true;
      this.video.autoplay = true;
      slot.appendChild(this.video);
      this.painter = null; // PackedCanvas, once alpha.js is loaded
      if (PackedCanvas) this.painter = new PackedCanvas(this.canvas);
      else packedReady.then((P) => { this.painter = this.painter || new P(this.canvas); });
      this.probe = new FrameProbe();
      this.state = "connecting";
      this.reason = null;
      this.pc = null;
      this.failures = 0; // consecutive attempts that never showed a frame
      this.connects = 0; // peer connections that showed frames
      this.framesDrawn = 0;
      this.firstFrameAt = null;
      this.lastFrameAt = null;
      this.series = [];
      this.events = []; // {at, what}: connection history, for tests and logs
      this.soundBlocked = false;
      this.audioCtx = null;
      this.audioSrc = null;
      this.analyser = null;
      this.audioBuf = null;
      this.retryTimer = null;
      this.generation = 0;
      this.syncTarget = null; // ms asked of the video jitter buffer (see _syncAssist)
      this._jb = {};
      this._frameLoop();
      setInterval(() => this._watchdog(), 1000);
      setInterval(() => this._syncAssist(), 500);
    }

    _log(what) {
      this.events.push({ at: performance.now(), what });
      if (this.events.length > 500) this.events.shift();
    }

    start() {
      if (FORCED_CLIPS) return this._fallback("the page asked for clips (mode=clips)", false);
      if (typeof RTCPeerConnection === "undefined") {
        return this._fallback("this browser has no WebRTC", false);
      }
      this._connect();
    }

    async _connect() {
      clearTimeout(this.retryTimer);
      const gen = ++this.generation;
      this._close();
      if (this.state !== "fallback") this.state = "connecting";
      this._log("connecting");
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pc = pc;
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      const stream = new MediaStream();
      pc.ontrack = (ev) => {
        stream.addTrack(ev.track);
        if (ev.track.kind === "audio") this._tapAudio(ev.track);
      };
      pc.onconnectionstatechange = () => {
        if (gen !== this.generation) return;
        const s = pc.connectionState;
        this._log("connection " + s);
        if (s === "failed" || s === "closed") this._lost("connection " + s);
        else if (s === "disconnected") {
          // Often transient (a missed consent check): give it a moment to come back.
          setTimeout(() => {
            if (gen === this.generation && pc.connectionState === "disconnected") {
              this._lost("connection lost");
            }
          }, 2000);
        }
      };
      try {
        await pc.setLocalDescription(await pc.createOffer());
        await iceComplete(pc, ICE_GATHER_MS);
        this._log("offer sent");
        const res = await api("/api/live/offer", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ persona: this.persona, sdp: pc.localDescription.sdp,
                                 type: "offer" }),
        });
        if (gen !== this.generation) return;
        if (res.status === 503 || res.status === 404) {
          // Live streaming is off (or not for this persona): the clip player it is.
          this._close();
          return this._fallback(res.body.error || `live stream unavailable (${res.status})`,
                                true);
        }
        if (!res.ok) throw new Error(res.body.error || `offer refused (${res.status})`);
        this._log("answered");
        await pc.setRemoteDescription(res.body);
        this.video.srcObject = stream;
        this._play();
      } catch (err) {
        if (gen === this.generation) this._lost(String((err && err.message) || err));
      }
    }

    _play() {
      this.video.muted = this.soundBlocked;
      const started = this.video.play();
      if (started && started.catch) {
        started.catch((err) => {
          if (err && err.name === "NotAllowedError" && !this.video.muted) {
            // The browser wants a click before sound: show the picture, offer to unmute.
            this.soundBlocked = true;
            this.video.muted = true;
            document.dispatchEvent(new CustomEvent("vstage:sound-blocked"));
            this.video.play().catch(() => {});
          }
        });
      }
    }

    unmute() {
      this.soundBlocked = false;
      this.video.muted = false;
      if (this.audioCtx && this.audioCtx.state === "suspended") this.audioCtx.resume();
    }

    _tapAudio(track) {
      // The level of the voice as received, for tests and meters; not connected to the
      // speakers (the <video> plays the sound).
      try {
        if (!this.audioCtx) this.audioCtx = new AudioContext();
        if (this.audioCtx.state === "suspended") this.audioCtx.resume().catch(() => {});
        if (this.audioSrc) this.audioSrc.disconnect(); // the previous connection's track
        const src = this.audioCtx.createMediaStreamSource(new MediaStream([track]));
        this.audioSrc = src;
        this.analyser = this.audioCtx.createAnalyser();
        this.analyser.fftSize = 1024; // ~21 ms at 48 kHz: about one video frame
        this.audioBuf = new Float32Array(this.analyser.fftSize);
        src.connect(this.analyser);
      } catch (err) {
        this.analyser = null;
      }
    }

    _close() {
      this.syncTarget = null;
      this._jb = {};
      // The canvas keeps the last picture while a new connection comes up; the old stream's
      // frames must not count as the new one's.
      this.video.srcObject = null;
      if (this.pc) {
        this.pc.ontrack = null;
        this.pc.onconnectionstatechange = null;
        this.pc.close();
        this.pc = null;
      }
    }

    _lost(reason) {
      this._close();
      this.generation++;
      this.reason = reason;
      this._log("lost: " + reason);
      if (this.state === "live") this.failures = 0; // it worked: a fresh run of retries
      this.failures++;
      if (this.failures >= FAILS_BEFORE_FALLBACK) {
        this._fallback(`live stream failed ${this.failures} times (${reason})`, true);
        return;
      }
      if (this.state !== "fallback") this.state = "retrying";
      const delay = Math.min(500 * 2 ** (this.failures - 1), 8000) * (0.8 + 0.4 * Math.random());
      this.retryTimer = setTimeout(() => this._connect(), delay);
    }

    _fallback(reason, retry) {
      const was = this.state;
      this.state = "fallback";
      this.reason = reason;
      this._log("fallback: " + reason);
      this.canvas.style.visibility = "hidden";
      if (was !== "fallback") this.onFallback(reason);
      if (retry) this.retryTimer = setTimeout(() => this._connect(), RETRY_FALLBACK_MS);
    }

    // Chromium's lip sync moves the video's delay towards the audio's only gradually (several
    // seconds after a connect, and again whenever the audio jitter buffer grows): ask the
    // video jitter buffer for the audio's current delay directly, so mouth and voice agree
    // from the first sentences. Both delays come from the receiver's own statistics.
    async _syncAssist() {
      const pc = this.pc;
      if (!pc || this.state !== "live" || !("jitterBufferTarget" in RTCRtpReceiver.prototype)) {
        return;
      }
      const now = {};
      (await pc.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp") {
          now[r.kind] = [r.jitterBufferDelay, r.jitterBufferEmittedCount];
        }
      });
      const recent = (kind) => {
        const [delay, count] = now[kind] || [0, 0];
        const [d0, c0] = this._jb[kind] || [0, 0];
        return count > c0 ? (1000 * (delay - d0)) / (count - c0) : null;
      };
      const audio = recent("audio");
      this._jb = now;
      if (audio === null || pc !== this.pc) return;
      const target = Math.max(0, Math.min(1000, Math.round(audio)));
      if (this.syncTarget !== null && Math.abs(target - this.syncTarget) < 15) return;
      for (const receiver of pc.getReceivers()) {
        if (receiver.track && receiver.track.kind === "video") receiver.jitterBufferTarget = target;
      }
      this.syncTarget = target;
    }

    _watchdog() {
      if (this.state !== "live" || !this.pc) return;
      if (performance.now() - (this.lastFrameAt || 0) > STALL_MS) this._lost("no frames");
    }

    _frameLoop() {
      const onFrame = (now, meta) => {
        this._onFrame(meta);
        this.video.requestVideoFrameCallback(onFrame);
      };
      if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
        this.video.requestVideoFrameCallback(onFrame);
      } else {
        // Older browsers: poll each animation frame, drawing when the picture moved on.
        let last = -1;
        const tick = () => {
          if (this.video.currentTime !== last && this.video.readyState >= 2) {
            last = this.video.currentTime;
            this._onFrame({ mediaTime: last });
          }
          requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      }
    }

    _onFrame(meta) {
      const at = performance.now();
      if (!this.pc || !this.video.srcObject) return; // a late frame of a closed connection
      if (!this.painter || !this.painter.draw(this.video)) return;
      this.framesDrawn++;
      this.lastFrameAt = at;
      if (this.firstFrameAt === null) this.firstFrameAt = at;
      if (this.state !== "live") {
        const was = this.state;
        this.state = "live";
        this.failures = 0;
        this.connects++;
        this.reason = null;
        clearTimeout(this.retryTimer);
        this.canvas.style.visibility = "visible";
        this._log("live");
        this.onLive(was);
      }
      if (!measuring) return;
      const m = this.probe.measure(this.video);
      this.series.push({
        t: at,
        wall: performance.timeOrigin + at,
        n: this.framesDrawn,
        media: meta && meta.mediaTime,
        rtp: meta && meta.rtpTimestamp,
        expected: meta && meta.expectedDisplayTime,
        luma: m.luma,
        diff: m.diff,
        whole: m.whole,
        rms: rmsOf(this.analyser, this.audioBuf),
      });
      if (this.series.length > SERIES_KEPT) this.series.shift();
    }

    // The receiver's own figures (WebRTC getStats): jitter buffers, decoded, dropped, concealed.
    async stats() {
      if (!this.pc) return null;
      const out = {};
      const report = await this.pc.getStats();
      report.forEach((r) => {
        if (r.type !== "inbound-rtp") return;
        const jb = r.jitterBufferEmittedCount
          ? (1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount : null;
        const target = r.jitterBufferEmittedCount && r.jitterBufferTargetDelay
          ? (1000 * r.jitterBufferTargetDelay) / r.jitterBufferEmittedCount : null;
        out[r.kind] = {
          jitterBufferMs: jb, targetDelayMs: target, packetsLost: r.packetsLost,
          packetsReceived: r.packetsReceived, framesDecoded: r.framesDecoded,
          framesDropped: r.framesDropped, keyFramesDecoded: r.keyFramesDecoded,
          freezeCount: r.freezeCount, totalFreezesDuration: r.totalFreezesDuration,
          concealedSamples: r.concealedSamples, totalSamplesReceived: r.totalSamplesReceived,
          insertedSamplesForDeceleration: r.insertedSamplesForDeceleration,
          removedSamplesForAcceleration: r.removedSamplesForAcceleration,
          codec: r.codecId,
        };
      });
      return out;
    }

    // Drop the connection and connect again (what a page reload or a network blip does).
    reconnect() {
      this._lost("reconnect asked");
      this.failures = 0;
    }
  }

  const players = {};

  // What tests and the benchmark read (all times are performance.now() milliseconds):
  //   __live.state(p)            "connecting" | "live" | "retrying" | "fallback"
  //   __live.framesDrawn(p)      frames drawn into the canvas so far
  //   __live.firstFrameAt(p)     when the first frame was drawn
  //   __live.series(p, since)    per-frame records {t, wall, n, media, rtp, expected, luma,
  //                              diff, whole, rms} with t > since (wall: t as Unix epoch ms):
  //                              luma/diff of the probe region (mean luma 0..255, mean abs
  //                              change since the last frame), whole = change of the whole
  //                              avatar, rms = audio level (WebAudio AnalyserNode, ~21 ms);
  //                              recorded under automation, with &probe=1 or measure(true)
  //   __live.setProbe(p, [x, y, w, h])  the probe region in avatar pixels (e.g. mouth_box)
  //   __live.events(p)           connection history [{at, what}]
  //   __live.marks               page events [{at, type, reply_id, ...}] (performed,
  //                              reply_cancelled, ... as received over the websocket)
  //   __live.reconnect(p)        drop and redo the WebRTC connection
  //   __live.stats(p)            (async) the receiver's getStats per kind: jitter buffer ms,
  //                              frames decoded/dropped, freezes, concealed audio samples
  const hooks = {
    players,
    marks: [],
    now: () => performance.now(),
    state: (p) => (players[p] ? players[p].state : null),
    reason: (p) => (players[p] ? players[p].reason : null),
    framesDrawn: (p) => (players[p] ? players[p].framesDrawn : 0),
    firstFrameAt: (p) => (players[p] ? players[p].firstFrameAt : null),
    series: (p, since = -1) => (players[p] ? players[p].series.filter((r) => r.t > since) : []),
    setProbe: (p, box) => players[p] && players[p].probe.setBox(box),
    events: (p) => (players[p] ? players[p].events : []),
    reconnect: (p) => players[p] && players[p].reconnect(),
    stats: (p) => (players[p] ? players[p].stats() : null),
    painter: (p) => (players[p] && players[p].painter ? players[p].painter.kind : null),
    measure: (on) => { measuring = !!on; },
    video: (p) => {
      const v = players[p] && players[p].video;
      return v ? { paused: v.paused, muted: v.muted, width: v.videoWidth,
                   height: v.videoHeight, tracks: v.srcObject ? v.srcObject.getTracks()
                     .map((t) => t.kind + ":" + t.readyState) : [] } : null;
    },
    mark(msg) {
      this.marks.push({ at: performance.now(), ...msg });
      if (this.marks.length > 2000) this.marks.shift();
    },
  };
  window.__live = hooks;

  // A persona on a page: the clip player (fallback) and, when the server streams live, the
  // live player in the same slot. `live`: whether to try the live stream at all.
  class AvatarStage {
    constructor(container, id, name, { live, onNotice } = {}) {
      this.id = id;
      this.clips = window.vstage.mountPlayer(container, id, name);
      this.slot = this.clips.root;
      this.idleUrls = null;
      this.onNotice = onNotice || (() => {});
      this.mode = live ? "live" : "clips";
      window.vstage.setClipMode(id, !live);
      this.live = null;
      if (live) {
        this.clips.suspend();
        this.live = new LivePlayer(this.slot, id, {
          onLive: (was) => {
            this.mode = "live";
            window.vstage.setClipMode(id, false);
            this.clips.suspend();
            if (was === "fallback") this.onNotice(id, "live stream is back", "info");
          },
          onFallback: (reason) => {
            this.mode = "clips";
            window.vstage.setClipMode(id, true);
            this.clips.resume();
            if (this.idleUrls) this.clips.setIdle(this.idleUrls);
            this.onNotice(id, `live stream unavailable: ${reason}; playing clips`, "warn");
          },
        });
        players[id] = this.live;
        this.live.start();
      }
      // Live: subtitles follow the stream's sentences as the server performs them.
      this.clock = new window.vstage.SpeechClock((s) => {
        this.clips._setSubtitle(s.text);
        document.dispatchEvent(new CustomEvent("vstage:spoken", { detail: s }));
      }, () => this.clips._fadeSubtitle());
    }

    setIdle(urls) {
      this.idleUrls = urls;
      if (this.mode === "clips") this.clips.setIdle(urls);
    }

    // A sentence the live stream is playing now (the server's "performed" message).
    performed(msg) {
      if (this.mode === "live") this.clock.add(msg);
    }

    // A sentence as clip files (the server's "clip" message): only the fallback plays it.
    clip(msg) {
      if (this.mode === "clips") this.clips.enqueue(msg);
    }

    cancel(replyId) {
      this.clock.cancel(this.id, replyId);
      this.clips.cancel(replyId);
    }

    unmute() {
      this.clips.unmute();
      if (this.live) this.live.unmute();
    }

  }

  window.vstage.LivePlayer = LivePlayer;
  window.vstage.AvatarStage = AvatarStage;
  window.vstage.liveWanted = (state) =>
    !FORCED_CLIPS && !!(state && state.live) && typeof RTCPeerConnection !== "undefined";
})();
