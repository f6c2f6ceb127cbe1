// The /talk page: a private spoken conversation with one persona.
//
// Flow: the personas this link may talk to (GET /api/talk/personas) -> Start -> a session
// (POST /api/talk/sessions; "full" answers with a countdown and the page retries by itself)
// -> the microphone (getUserMedia with the browser's echo cancellation, noise suppression and
// gain control; denied: typing still works) -> one WebRTC connection that sends the mic and
// receives the persona's own live stream (colour|alpha video unpacked by alpha.js, Opus voice)
// and one websocket for everything else: the server's conversation state and transcript, and
// the page's typed text, hands-free / hold-to-talk mode and "talking" presses.
//
// Long-term memory: the page keeps a random visitor id in localStorage (made once per browser)
// and sends it when a conversation starts, so the persona remembers this visitor next time
// (the server keeps only a hash of it). "What do you remember?" and "Forget me" (confirmed
// first) ask the server (POST .../memory) and show its answer in the transcript. Without
// storage (a private window that refuses it) no id is sent and nothing is remembered.
//
// The server decides turns (its voice activity detection, barge-in, echo guard); the page
// shows what it says. Transcript messages are keyed by turn and sentence index, so the replay
// a reconnected websocket gets (state and transcript so far) changes nothing already shown.
//
// Test hooks live on `window.__talk` (see the end of the file).

import { PackedCanvas } from "./alpha.js";

const params = new URLSearchParams(location.search);
const ACCESS = { token: params.get("token") || "", invite: params.get("invite") || "" };
// A conversation in the address (?session=S&key=K, put there when it starts) is picked up
// again after a reload; what the page knew of it is kept in sessionStorage (this tab only).
const RESUME = { session: params.get("session") || "", key: params.get("key") || "" };
const STORED = "vstage-talk:";
const VISITOR_KEY = "vstage-talk-visitor";
const MIC_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const ICE_GATHER_MS = 3000;
const STALL_MS = 5000; // live video but no frame and no packet this long: reconnect it
const RTC_TRIES = 4; // reconnects of the media before the page says the video is lost
const WS_TRIES = 6; // websocket reconnects (about 30 s) before the page says the link is lost
const SILENT_MIC_MS = 6000; // digital silence this long from an open mic: "no sound" notice
const LOUD_RMS = 0.01; // received voice louder than this counts as playing
const KEPT = 4000; // messages and audio samples kept for tests

const $ = (id) => document.getElementById(id);

function withAccess(path) {
  const q = new URLSearchParams();
  if (ACCESS.token) q.set("token", ACCESS.token);
  if (ACCESS.invite) q.set("invite", ACCESS.invite);
  const s = q.toString();
  return s ? path + (path.includes("?") ? "&" : "?") + s : path;
}

/** fetch + JSON: {ok, status, body, headers}; a network failure is status 0. */
async function request(url, options) {
  try {
    const resp = await fetch(url, options);
    const body = resp.status === 204 ? {} : await resp.json().catch(() => ({}));
    return { ok: resp.ok, status: resp.status, body, headers: resp.headers };
  } catch (err) {
    return { ok: false, status: 0, body: { error: "cannot reach the server" },
             headers: new Headers() };
  }
}

/**
 * This browser's visitor id: 32 random hex digits made once and kept in localStorage; null
 * when the browser keeps no storage for the page (then nothing is remembered about it).
 */
function visitorId() {
  try {
    let id = localStorage.getItem(VISITOR_KEY);
    if (!id || !/^[0-9a-f]{32,64}$/.test(id)) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      localStorage.setItem(VISITOR_KEY, id);
      if (localStorage.getItem(VISITOR_KEY) !== id) return null;
    }
    return id;
  } catch (err) {
    return null; // storage off or full
  }
}

function postJson(url, data) {
  return request(url, { method: "POST", headers: { "Content-Type": "application/json" },
                        body: JSON.stringify(data) });
}

const LANGUAGE_NAMES = (() => {
  try {
    return new Intl.DisplayNames(["en"], { type: "language" });
  } catch (err) {
    return null;
  }
})();

/** "German (de)" for "de"; the code alone where the browser has no names. */
function languageName(code) {
  if (!code) return "";
  let name = null;
  try {
    name = LANGUAGE_NAMES && LANGUAGE_NAMES.of(code);
  } catch (err) {
    name = null;
  }
  return name && name !== code ? `${name} (${code})` : code;
}

function rms(analyser, buf) {
  analyser.getFloatTimeDomainData(buf);
  let sum = 0;
  let peak = 0;
  for (let i = 0; i < buf.length; i++) {
    sum += buf[i] * buf[i];
    peak = Math.max(peak, Math.abs(buf[i]));
  }
  return { rms: Math.sqrt(sum / buf.length), peak };
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

// ---------------------------------------------------------------------------------- transcript

/**
 * Both sides of the conversation, one list item per turn (the learner's line, the persona's
 * sentences as they play, a teacher's correction and gloss) and notices between them. Every
 * update is keyed (turn, sentence index), so a replayed message is a no-op.
 */
class Transcript {
  constructor(list, personaName) {
    this.list = list;
    this.personaName = personaName;
    this.turns = new Map(); // turn number -> record
    this.pending = []; // typed lines the server has not confirmed as a turn yet
    this.heardCount = new Map(); // turn -> "heard" messages since the websocket (re)opened
  }

  clear() {
    this.list.replaceChildren();
    this.turns.clear();
    this.pending = [];
    this.heardCount.clear();
  }

  /** The websocket (re)opened: the server replays the transcript from its start. */
  replaying() {
    this.heardCount.clear();
  }

  _newTurnItem() {
    const li = document.createElement("li");
    li.className = "turn";
    const you = document.createElement("p");
    you.className = "line you";
    you.hidden = true;
    you.innerHTML = "<b>You</b><span class=\"text\"></span>";
    const persona = document.createElement("p");
    persona.className = "line persona";
    persona.hidden = true;
    persona.innerHTML = "<b></b><span class=\"text\"></span><em class=\"tag\"></em>";
    persona.querySelector("b").textContent = this.personaName;
    const notes = document.createElement("div");
    notes.className = "notes";
    li.append(you, persona, notes);
    return { li, you, persona, notes, turn: null, sentences: new Map(), final: null,
             heard: null, parts: [], typed: false, interrupted: false, refused: null,
             correction: null, gloss: null, language: null };
  }

  _place(rec) {
    // Turns in their order; notices and typed lines stay where they happened.
    for (const other of this.list.children) {
      const n = Number(other.dataset.turn);
      if (other.dataset.turn && n > rec.turn) {
        this.list.insertBefore(rec.li, other);
        return;
      }
    }
    this.list.appendChild(rec.li);
  }

  _turn(n) {
    let rec = this.turns.get(n);
    if (!rec) {
      rec = this._newTurnItem();
      rec.turn = n;
      rec.li.dataset.turn = String(n);
      this.turns.set(n, rec);
      this._place(rec);
    }
    return rec;
  }

  _scroll() {
    const l = this.list;
    l.scrollTop = l.scrollHeight;
  }

  static _norm(text) {
    return String(text).toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim();
  }

  /** A typed line, shown at once; the server's "heard" for it makes it a turn. */
  typed(text) {
    const rec = this._newTurnItem();
    rec.typed = true;
    rec.heard = text;
    rec.parts = [text];
    rec.li.classList.add("pending");
    rec.you.hidden = false;
    rec.you.querySelector(".text").textContent = text;
    this.list.appendChild(rec.li);
    this.pending.push(rec);
    this._scroll();
  }

  /**
   * The learner's words of a turn. More speech before the answer started merges into the
   * same turn: each part comes as its own message, in order, and is added to the line (a
   * replay after a reconnect sends the same parts again, in the same places).
   */
  heard(turn, text, language) {
    const part = this.heardCount.get(turn) || 0;
    this.heardCount.set(turn, part + 1);
    let rec = this.turns.get(turn);
    if (!rec) {
      const i = this.pending.findIndex((p) => Transcript._norm(p.heard) === Transcript._norm(text));
      if (i >= 0) {
        rec = this.pending.splice(i, 1)[0];
        rec.li.classList.remove("pending");
        rec.turn = turn;
        rec.li.dataset.turn = String(turn);
        this.turns.set(turn, rec);
      } else rec = this._turn(turn);
    } else {
      // A line typed while the persona was still thinking merged into this turn.
      const i = this.pending.findIndex((p) => Transcript._norm(p.heard) === Transcript._norm(text));
      if (i >= 0) this.pending.splice(i, 1)[0].li.remove();
    }
    if (rec.typed && part === 0) rec.parts = [];
    rec.parts[part] = text;
    rec.heard = rec.parts.filter(Boolean).join(" ");
    rec.language = language || null;
    rec.you.hidden = false;
    rec.you.querySelector(".text").textContent = rec.heard;
    if (language) rec.you.lang = language;
    this._scroll();
  }

  said(turn, index, text, lang) {
    const rec = this._turn(turn);
    if (rec.sentences.has(index)) return;
    rec.sentences.set(index, text);
    this._showPersona(rec, lang);
  }

  _showPersona(rec, lang) {
    const order = [...rec.sentences.keys()].sort((a, b) => a - b);
    const text = order.length ? order.map((i) => rec.sentences.get(i)).join(" ") : rec.final;
    if (!text && !rec.interrupted) return;
    rec.persona.hidden = false;
    rec.persona.querySelector(".text").textContent = text || "…";
    if (lang) rec.persona.lang = lang;
    this._scroll();
  }

  /** The finished reply: its notes now; its text only if no sentence of it ever played. */
  answer(turn, text, correction, gloss, lang, settled) {
    const rec = this._turn(turn);
    rec.final = text || "";
    rec.correction = correction || null;
    rec.gloss = gloss || null;
    rec.notes.replaceChildren();
    for (const [kind, mark, note] of [["correction", "✎", correction], ["gloss", "≈", gloss]]) {
      if (!note) continue;
      const p = document.createElement("p");
      p.className = "note " + kind;
      const sign = document.createElement("b");
      sign.textContent = mark;
      sign.title = kind;
      const body = document.createElement("span");
      body.textContent = note; // model text: always text, never markup
      p.append(sign, body);
      rec.notes.appendChild(p);
    }
    if (settled) this.settle(lang);
    this._scroll();
  }

  /** The persona is done talking: replies that never played show their text now. */
  settle(lang) {
    for (const rec of this.turns.values()) {
      if (rec.final && !rec.sentences.size && rec.persona.hidden) this._showPersona(rec, lang);
    }
  }

  interrupted(turn) {
    const rec = this._turn(turn);
    if (rec.interrupted) return;
    rec.interrupted = true;
    rec.persona.classList.add("interrupted");
    rec.persona.querySelector(".tag").textContent = "interrupted";
    this._showPersona(rec);
  }

  refused(turn, reason) {
    let rec = turn == null ? null : this.turns.get(turn);
    if (!rec && turn == null && this.pending.length) rec = this.pending.shift();
    if (!rec && turn != null) rec = this._turn(turn);
    if (!rec) return this.notice("warn", "not answered: " + reason);
    rec.refused = reason;
    rec.li.classList.remove("pending");
    rec.li.classList.add("refused");
    const p = document.createElement("p");
    p.className = "note refused";
    p.textContent = "Not answered: " + reason;
    rec.notes.appendChild(p);
    this._scroll();
    return undefined;
  }

  /** The persona's answer to a memory control ("What do you remember?", "Forget me"). */
  memory(command, text) {
    const li = document.createElement("li");
    li.className = "memory";
    li.dataset.command = command;
    const who = document.createElement("b");
    who.textContent = this.personaName;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text; // the server's words, with stored notes in them: text only
    li.append(who, body);
    this.list.appendChild(li);
    this._scroll();
  }

  notice(level, text) {
    const li = document.createElement("li");
    li.className = "notice " + (level || "info");
    li.dataset.level = level || "info";
    li.textContent = text;
    this.list.appendChild(li);
    this._scroll();
  }

  /** What tests read: each turn and notice in page order. */
  entries() {
    const out = [];
    const byLi = new Map();
    for (const rec of [...this.turns.values(), ...this.pending]) byLi.set(rec.li, rec);
    for (const li of this.list.children) {
      const rec = byLi.get(li);
      if (rec) {
        const order = [...rec.sentences.keys()].sort((a, b) => a - b);
        out.push({ kind: "turn", turn: rec.turn, you: rec.heard, typed: rec.typed,
                   language: rec.language, sentences: order.map((i) => rec.sentences.get(i)),
                   persona: rec.persona.hidden ? null : rec.persona.querySelector(".text")
                     .textContent,
                   final: rec.final, interrupted: rec.interrupted, refused: rec.refused,
                   correction: rec.correction, gloss: rec.gloss });
      } else if (li.classList.contains("notice")) {
        out.push({ kind: "notice", level: li.dataset.level, text: li.textContent });
      } else if (li.classList.contains("memory")) {
        out.push({ kind: "memory", command: li.dataset.command,
                   text: li.querySelector(".text").textContent });
      }
    }
    return out;
  }
}

// ------------------------------------------------------------------------------- microphone

/** The learner's microphone: opened with the browser's voice processing, watched for mute,
 * disconnection and digital silence (a hardware mute switch or a dead device). */
class Microphone {
  constructor(audioCtx, onProblem) {
    this.audioCtx = audioCtx;
    this.onProblem = onProblem; // (code | null, text) -> void; null: the problem is gone
    this.stream = null;
    this.track = null;
    this.state = "off"; // off | on | denied | none | busy | insecure | muted | ended
    this.reason = null;
    this.level = 0;
    this.silentMs = 0;
    this.everSound = false;
    this.flagged = null;
    this.timer = null;
    this.openedAt = null; // performance.now() when the capture started (tests line up files)
    this.muted = false; // muted on the page (the Mute button): the track sends silence
  }

  /** Ask for the mic. Resolves to true when it is on; otherwise `state` and `reason` say why. */
  async open() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.state = "insecure";
      this.reason = "this page has no microphone access here (it needs https or 127.0.0.1)";
      return false;
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: MIC_CONSTRAINTS,
                                                                video: false });
    } catch (err) {
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
        this.state = "denied";
        this.reason = "the microphone is blocked for this page";
      } else if (name === "NotFoundError" || name === "OverconstrainedError") {
        this.state = "none";
        this.reason = "no microphone was found";
      } else if (name === "NotReadableError" || name === "AbortError") {
        this.state = "busy";
        this.reason = "the microphone is in use by another program or could not start";
      } else {
        this.state = "denied";
        this.reason = `the microphone could not open (${name || err})`;
      }
      return false;
    }
    this.openedAt = performance.now();
    this.track = this.stream.getAudioTracks()[0];
    this.state = "on";
    this.track.addEventListener("mute", () => this._problem("mic-muted",
      "Your microphone is muted (by the system or the browser): unmute it, or type."));
    this.track.addEventListener("unmute", () => this._clear("mic-muted"));
    this.track.addEventListener("ended", () => {
      this.state = "ended";
      this._problem("mic-muted", "Your microphone was disconnected: type instead, or start " +
                                 "a new conversation to use it again.");
    });
    this._watch();
    return true;
  }

  _problem(code, text) {
    if (this.flagged === code) return;
    this.flagged = code;
    if (code === "mic-muted" && this.state === "on") this.state = "muted";
    this.onProblem(code, text);
  }

  _clear(code) {
    if (this.flagged !== code) return;
    this.flagged = null;
    if (this.state === "muted") this.state = "on";
    this.onProblem(null, "");
  }

  _watch() {
    let analyser = null;
    let buf = null;
    try {
      const src = this.audioCtx.createMediaStreamSource(this.stream);
      analyser = this.audioCtx.createAnalyser();
      analyser.fftSize = 2048;
      buf = new Float32Array(analyser.fftSize);
      src.connect(analyser);
    } catch (err) {
      return; // no level meter; the server still hears the mic
    }
    const step = 200;
    this.timer = setInterval(() => {
      const m = rms(analyser, buf);
      this.level = m.rms;
      // Real microphones always carry some noise: exact zeros mean nothing is arriving.
      if (m.peak === 0 && this.track && this.track.enabled) this.silentMs += step;
      else {
        this.silentMs = 0;
        this.everSound = true;
        this._clear("no-audio");
      }
      if (this.silentMs >= SILENT_MIC_MS && this.flagged === null) {
        this._problem("no-audio", "No sound is coming from your microphone: is it muted or " +
                                  "switched off? You can also type.");
      }
    }, step);
  }

  /** Mute on the page: the track stays, sending silence, until unmuted. */
  setMuted(on) {
    if (!this.track) return;
    this.muted = on;
    this.track.enabled = !on;
    this.silentMs = 0;
  }

  stop() {
    clearInterval(this.timer);
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.track = null;
    if (this.state === "on" || this.state === "muted") this.state = "off";
  }
}

// -------------------------------------------------------------------------------- the avatar

/**
 * One WebRTC connection per session: the mic goes up (when there is one), the session's live
 * stream comes down. A dropped or stalled connection is offered again with backoff; after
 * RTC_TRIES failures in a row `onLost` says so (the websocket and typing go on).
 */
class AvatarLink {
  constructor({ video, canvas, audioCtx, offerUrl, onLive, onLost, onGone, onSoundBlocked }) {
    this.video = video;
    this.canvas = canvas;
    this.audioCtx = audioCtx;
    this.offerUrl = offerUrl;
    this.onLive = onLive;
    this.onLost = onLost;
    this.onGone = onGone;
    this.onSoundBlocked = onSoundBlocked;
    this.painter = new PackedCanvas(canvas);
    this.pc = null;
    this.mic = null;
    this.state = "idle"; // idle | connecting | live | retrying | lost | closed
    this.reason = null;
    this.failures = 0;
    this.generation = 0;
    this.framesDrawn = 0;
    this.firstFrameAt = null;
    this.lastFrameAt = null;
    this.events = [];
    this.retryTimer = null;
    this.analyser = null;
    this.audioBuf = null;
    this.audioSrc = null;
    this.audio = { level: 0, loudMs: 0, lastLoudAt: null, series: [] };
    this._frameLoop();
    this.timers = [setInterval(() => this._watchdog(), 1000),
                   setInterval(() => this._sampleAudio(), 50)];
  }

  _log(what) {
    this.events.push({ at: performance.now(), what });
    if (this.events.length > 300) this.events.shift();
  }

  /** Connect, sending `micStream`'s audio when given. */
  start(micStream) {
    this.mic = micStream;
    this._connect();
  }

  async _connect() {
    clearTimeout(this.retryTimer);
    const gen = ++this.generation;
    this._closePc();
    this.state = "connecting";
    this._log("connecting");
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    const micTrack = this.mic && this.mic.getAudioTracks()[0];
    if (micTrack && micTrack.readyState === "live") {
      pc.addTransceiver(micTrack, { direction: "sendrecv", streams: [this.mic] });
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    pc.addTransceiver("video", { direction: "recvonly" });
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
      if (gen !== this.generation) return;
      const res = await postJson(this.offerUrl, { sdp: pc.localDescription.sdp, type: "offer" });
      if (gen !== this.generation) return;
      if (res.status === 404 || res.status === 410) {
        // The session is gone (ended, timed out; a reloaded page can come back too late).
        this._closePc();
        this.state = "closed";
        this._log("session gone");
        this.onGone();
        return;
      }
      if (res.status === 503) {
        // No WebRTC on this server: no avatar and no voice, but typing works.
        this._closePc();
        this.state = "lost";
        this.reason = res.body.error || "no video on this server";
        this._log("unavailable: " + this.reason);
        this.onLost(this.reason, false);
        return;
      }
      if (!res.ok) throw new Error(res.body.error || `offer refused (${res.status})`);
      await pc.setRemoteDescription(res.body);
      this.video.srcObject = stream;
      this._play();
    } catch (err) {
      if (gen === this.generation) this._lost(String((err && err.message) || err));
    }
  }

  _play() {
    const started = this.video.play();
    if (started && started.catch) {
      started.catch((err) => {
        if (err && err.name === "NotAllowedError" && !this.video.muted) {
          this.video.muted = true; // the picture at least; the page offers a click for sound
          this.onSoundBlocked();
          this.video.play().catch(() => {});
        }
      });
    }
  }

  unmute() {
    this.video.muted = false;
    this.video.play().catch(() => {});
    if (this.audioCtx.state === "suspended") this.audioCtx.resume().catch(() => {});
  }

  _tapAudio(track) {
    // The voice's level as received, for the state display and tests; the <video> plays it.
    try {
      if (this.audioSrc) this.audioSrc.disconnect();
      this.audioSrc = this.audioCtx.createMediaStreamSource(new MediaStream([track]));
      this.analyser = this.audioCtx.createAnalyser();
      this.analyser.fftSize = 1024;
      this.audioBuf = new Float32Array(this.analyser.fftSize);
      this.audioSrc.connect(this.analyser);
    } catch (err) {
      this.analyser = null;
    }
  }

  _sampleAudio() {
    if (!this.analyser || !this.pc) return;
    const now = performance.now();
    const level = rms(this.analyser, this.audioBuf).rms;
    const a = this.audio;
    a.level = level;
    if (level > LOUD_RMS && !this.video.muted && !this.video.paused) {
      a.loudMs += 50;
      a.lastLoudAt = now;
    }
    a.series.push({ t: now, rms: level });
    if (a.series.length > KEPT) a.series.shift();
  }

  _frameLoop() {
    const onFrame = () => {
      this._onFrame();
      this.video.requestVideoFrameCallback(onFrame);
    };
    if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
      this.video.requestVideoFrameCallback(onFrame);
    } else {
      let last = -1;
      const tick = () => {
        if (this.video.currentTime !== last && this.video.readyState >= 2) {
          last = this.video.currentTime;
          this._onFrame();
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }
  }

  _onFrame() {
    if (!this.pc || !this.video.srcObject) return;
    if (!this.painter.draw(this.video)) return;
    const at = performance.now();
    this.framesDrawn++;
    this.lastFrameAt = at;
    if (this.firstFrameAt === null) this.firstFrameAt = at;
    if (this.state !== "live") {
      this.state = "live";
      this.failures = 0;
      this.reason = null;
      this._log("live");
      this.onLive();
    }
  }

  async _watchdog() {
    if (this.state !== "live" || !this.pc) return;
    if (performance.now() - (this.lastFrameAt || 0) <= STALL_MS) return;
    // No picture for a while. A server short of CPU sends frames late, but its packets
    // (the voice's included) keep coming: then reconnecting would only cut the microphone.
    const pc = this.pc;
    let bytes = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp") bytes += r.bytesReceived || 0;
    });
    if (pc !== this.pc) return;
    const moving = bytes > (this.bytesSeen || 0);
    this.bytesSeen = bytes;
    if (moving && performance.now() - (this.lastFrameAt || 0) < 6 * STALL_MS) return;
    this._lost("no frames");
  }

  _closePc() {
    this.bytesSeen = 0;
    this.video.srcObject = null;
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
  }

  _lost(reason) {
    this._closePc();
    this.generation++;
    this.reason = reason;
    this._log("lost: " + reason);
    this.failures++;
    if (this.failures > RTC_TRIES) {
      this.state = "lost";
      this.onLost(reason);
      return;
    }
    this.state = "retrying";
    const delay = Math.min(500 * 2 ** (this.failures - 1), 8000) * (0.8 + 0.4 * Math.random());
    this.retryTimer = setTimeout(() => this._connect(), delay);
  }

  /** Try again now (the page's Reconnect button). */
  reconnect() {
    this.failures = 0;
    this._connect();
  }

  close() {
    clearTimeout(this.retryTimer);
    this.generation++;
    this._closePc();
    for (const t of this.timers) clearInterval(t);
    this.state = "closed";
  }
}

// ------------------------------------------------------------------------------- the channel

/** The session's websocket, reconnected with backoff; sends wait for it to be open. */
class Channel {
  constructor(url, { onMessage, onOpen, onDown, onGone }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onDown = onDown;
    this.onGone = onGone;
    this.ws = null;
    this.outbox = [];
    this.failures = 0;
    this.closed = false;
    this.timer = null;
    this.opens = 0;
  }

  open() {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.failures = 0;
      this.opens++;
      this.onOpen(this.opens);
      for (const msg of this.outbox.splice(0)) ws.send(msg);
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (err) {
        return;
      }
      this.onMessage(msg);
    };
    ws.onclose = () => {
      if (this.closed || ws !== this.ws) return;
      this.failures = opened ? 1 : this.failures + 1;
      if (this.failures > WS_TRIES) {
        this.onGone();
        return;
      }
      this.onDown();
      const delay = Math.min(500 * 2 ** (this.failures - 1), 8000) * (0.8 + 0.4 * Math.random());
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  send(obj) {
    const data = JSON.stringify(obj);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
    else this.outbox.push(data);
  }

  /** Try again from the start (the Reconnect button after onGone). */
  retry() {
    this.failures = 0;
    clearTimeout(this.timer);
    this.open();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }
}

// --------------------------------------------------------------------------------- the page

const STATE_TEXT = {
  connecting: "Connecting…",
  listening: "Listening",
  hearing: "Hearing you…",
  thinking: "Thinking…",
  speaking: "Speaking",
  reconnecting: "Reconnecting…",
  lost: "Connection lost",
  ended: "Ended",
};

const ENDED_TEXT = {
  idle: (s) => `Nobody spoke for ${s ? Math.round(s) + " s" : "a while"}, so the ` +
               "conversation ended and its place was freed.",
  closed: () => "You ended the conversation.",
  shutdown: () => "The server is shutting down.",
  gone: () => "It is no longer on the server (it ended, or timed out while this page was away).",
};

class TalkPage {
  constructor() {
    this.personas = [];
    this.session = null; // {session, key, persona, language, idle_timeout_s, name}
    this.state = "loading";
    this.serverState = null;
    this.mode = "handsfree";
    this.talking = false;
    this.audioCtx = null;
    this.mic = null;
    this.link = null;
    this.channel = null;
    this.transcript = new Transcript($("transcript"), "");
    this.messages = [];
    this.fullUntil = null;
    this.fullTimer = null;
    this.endedReason = null;
    this.lastChosen = null;
    this.forgotTurn = 0; // turns up to this one were forgotten: late messages of them are dropped
    this.memoryBusy = false;
    this._wire();
    // ?mode=ptt: a link that opens in hold-to-talk (a noisy room, a shared desk).
    if (params.get("mode") === "ptt") this.setMode("ptt");
  }

  // ------------------------------------------------------------------ views

  view(name) {
    document.body.dataset.view = name;
    for (const el of document.querySelectorAll(".view")) el.hidden = el.id !== "view-" + name;
  }

  setState(state) {
    this.state = state;
    const box = $("state");
    box.dataset.state = state;
    $("state-label").textContent = STATE_TEXT[state] || state;
    $("state-hint").textContent = this._hint(state);
  }

  _hint(state) {
    const micOn = this.mic && (this.mic.state === "on");
    if (micOn && this.mic.muted && (state === "listening" || state === "speaking")) {
      return "your microphone is muted";
    }
    if (state === "listening") {
      if (!micOn) return "type your message below";
      return this.mode === "ptt" ? "hold the button or Space while you speak"
                                 : "speak when you are ready";
    }
    if (state === "speaking" && micOn) {
      return this.mode === "ptt" ? "hold to talk to interrupt" : "talk to interrupt";
    }
    return "";
  }

  refuse(reason) {
    this.view("refused");
    this.state = "refused";
    $("refused-reason").textContent = reason;
  }

  // ------------------------------------------------------------------ start

  async load() {
    if (RESUME.session && RESUME.key) {
      const known = this._stored(RESUME.session);
      RESUME.session = ""; // once: "Start a new conversation" later goes to the picker
      return this.begin({ ...known, session: params.get("session"), key: params.get("key") },
                        { resumed: true });
    }
    const res = await request(withAccess("/api/talk/personas"));
    if (!res.ok) {
      if (res.status === 0) return this.refuse("The server cannot be reached. Is it running?");
      return this.refuse(res.body.error || `refused (${res.status})`);
    }
    this.personas = res.body.personas || [];
    const list = $("persona-list");
    list.replaceChildren();
    const wanted = params.get("persona");
    this.personas.forEach((p, i) => {
      const label = document.createElement("label");
      label.className = "persona-choice";
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "persona";
      input.value = p.id;
      input.checked = wanted ? p.id === wanted : i === 0;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = p.name || p.id;
      const lang = document.createElement("span");
      lang.className = "lang";
      lang.textContent = languageName(p.language);
      label.append(input, name, lang);
      list.appendChild(label);
    });
    if (!this.personas.length) return this.refuse("There is nobody to talk to on this server.");
    const { sessions, max_sessions: max } = res.body;
    $("capacity").textContent = max ? `${sessions || 0} of ${max} conversations in use.` : "";
    this.view("pick");
    this.state = "picking";
    const checked = list.querySelector("input:checked");
    if (checked) checked.focus();
    return undefined;
  }

  chosen() {
    const el = document.querySelector("input[name=persona]:checked");
    return el ? el.value : null;
  }

  async start(persona) {
    $("pick-error").textContent = "";
    this.lastChosen = persona;
    // A click: the one moment the browser lets the page start sound.
    if (!this.audioCtx) this.audioCtx = new AudioContext();
    if (this.audioCtx.state === "suspended") this.audioCtx.resume().catch(() => {});
    $("start").disabled = true;
    const visitor = visitorId();
    const res = await postJson(withAccess("/api/talk/sessions"),
                               visitor ? { persona, visitor } : { persona });
    $("start").disabled = false;
    if (res.status === 201 || res.ok) return this.begin(res.body);
    if (res.status === 503 && res.body.error === "full") {
      const header = Number(res.headers.get("Retry-After"));
      return this.full(Number(res.body.retry_after_s) || header || 10);
    }
    if (res.status === 401 || res.status === 403) {
      return this.refuse(res.body.error || "this link does not open a conversation");
    }
    if (this.state !== "picking") this.view("pick");
    this.state = "picking";
    $("pick-error").textContent = res.body.error || `could not start (${res.status})`;
    return undefined;
  }

  full(seconds) {
    this.view("full");
    this.state = "full";
    this.fullUntil = performance.now() + seconds * 1000;
    clearInterval(this.fullTimer);
    const tick = () => {
      const left = this.retryIn();
      $("full-seconds").textContent = String(left);
      if (left <= 0) {
        clearInterval(this.fullTimer);
        this.fullTimer = null;
        this.start(this.lastChosen);
      }
    };
    tick();
    this.fullTimer = setInterval(tick, 1000);
    $("full-retry").focus();
  }

  retryIn() {
    return this.fullUntil === null ? null
      : Math.max(0, Math.ceil((this.fullUntil - performance.now()) / 1000));
  }

  _stored(sid) {
    try {
      return JSON.parse(sessionStorage.getItem(STORED + sid) || "{}");
    } catch (err) {
      return {};
    }
  }

  /** The conversation in the address bar (a reload comes back to it), or out of it. */
  _remember(session) {
    const q = new URLSearchParams(location.search);
    q.delete("session");
    q.delete("key");
    if (session) {
      q.set("session", session.session);
      q.set("key", session.key);
      const { persona, name, language, idle_timeout_s: idle } = session;
      try {
        sessionStorage.setItem(STORED + session.session,
                               JSON.stringify({ persona, name, language, idle_timeout_s: idle }));
      } catch (err) {
        // private mode without storage: a reload shows less about the persona
      }
    }
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }

  async begin(session, { resumed = false } = {}) {
    clearInterval(this.fullTimer);
    this.fullUntil = null;
    if (!this.audioCtx) this.audioCtx = new AudioContext();
    const p = this.personas.find((x) => x.id === session.persona) || {};
    this.session = { ...session, name: session.name || p.name || session.persona || "Persona",
                     language: session.language || p.language };
    this._remember(this.session);

    this.endedReason = null;
    this.forgotTurn = 0;
    if (!resumed) this.transcript.clear();
    this.transcript.personaName = this.session.name;
    this.messages = [];
    $("persona-tag").textContent = [this.session.name, languageName(this.session.language)]
      .filter(Boolean).join(" · ");
    $("say-text").lang = this.session.language || "";
    $("over").hidden = true;
    this._inputs(true);
    this.view("talk");
    this.setState("connecting");
    const base = `/api/talk/sessions/${encodeURIComponent(session.session)}`;
    const key = "key=" + encodeURIComponent(session.key);

    this.mic = new Microphone(this.audioCtx, (code, text) => this._micProblem(code, text));
    const micOn = await this.mic.open();
    if (!this.session || this.session.session !== session.session) return; // ended meanwhile

    const proto = location.protocol === "https:" ? "wss" : "ws";
    this.channel = new Channel(`${proto}://${location.host}${base}/ws?${key}`, {
      onMessage: (msg) => this.onMessage(msg),
      onOpen: (n) => {
        $("conn").textContent = "";
        this.transcript.replaying();
        if (resumed && n === 1) this.transcript.notice("info", "Back in your conversation.");
        this.channel.send({ type: "mode", mode: this.mode });
        if (n > 1 && this.serverState) this.setState(this.serverState);
      },
      onDown: () => {
        if (this.state !== "ended") this.setState("reconnecting");
        $("conn").textContent = "connection interrupted: reconnecting…";
      },
      onGone: () => this.lost("The connection to the server was lost."),
    });
    this.channel.open();
    if (!micOn) {
      this._micUnavailable();
    }
    this._controlsForMic(micOn);

    this.link = new AvatarLink({
      video: $("remote"),
      canvas: $("avatar"),
      audioCtx: this.audioCtx,
      offerUrl: `${base}/offer?${key}`,
      onLive: () => { $("video-note").hidden = true; },
      onLost: (reason, retry = true) => this._videoNote(
        retry ? `The avatar's video was lost (${reason}).` : `No avatar: ${reason}.`, retry),
      onGone: () => this.ended("gone"),
      onSoundBlocked: () => this._videoNote("The browser blocked the sound.", false, true),
    });
    this.link.start(micOn ? this.mic.stream : null);
    this.endUrl = `${base}/end?${key}`;
    this.deleteUrl = `${base}?${key}`;
    this.memoryUrl = `${base}/memory?${key}`;
  }

  _micUnavailable() {
    const why = this.mic.reason || "the microphone is not available";
    const note = $("mic-note");
    note.hidden = false;
    note.textContent = `No microphone: ${why}. Type your messages below instead.` +
      (this.mic.state === "denied" ? " To talk, allow the microphone for this site (the icon " +
                                     "in the address bar) and start a new conversation." : "");
    const client = this.mic.state === "denied" ? "mic-denied" : "no-audio";
    this.channel.send({ type: "client", state: client });
    $("say-text").focus();
  }

  _controlsForMic(on) {
    for (const el of document.querySelectorAll("input[name=mode]")) el.disabled = !on;
    $("hold").disabled = !on;
    $("mute").disabled = !on;
    $("mute").setAttribute("aria-pressed", "false");
    $("mute-label").textContent = "Mute mic";
    document.body.classList.toggle("no-mic", !on);
  }

  _micProblem(code, text) {
    const note = $("mic-note");
    if (code === null) {
      note.hidden = true;
      note.textContent = "";
    } else {
      note.hidden = false;
      note.textContent = text;
      if (this.channel) this.channel.send({ type: "client", state: code });
    }
    this.setState(this.state);
  }

  _videoNote(text, reconnect, sound) {
    const note = $("video-note");
    note.replaceChildren(document.createTextNode(text + " "));
    if (reconnect) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Reconnect video";
      b.addEventListener("click", () => { note.hidden = true; this.link.reconnect(); });
      note.appendChild(b);
    }
    if (sound) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "🔊 Enable sound";
      b.addEventListener("click", () => { note.hidden = true; this.link.unmute(); });
      note.appendChild(b);
    }
    note.hidden = false;
  }

  // ------------------------------------------------------------------ messages

  onMessage(msg) {
    this.messages.push({ at: performance.now(), ...msg });
    if (this.messages.length > KEPT) this.messages.shift();
    // A reply cut by "Forget me" may still send a message or two: not shown again.
    if (typeof msg.turn === "number" && msg.turn <= this.forgotTurn) return;
    const t = this.transcript;
    const lang = this.session && this.session.language;
    switch (msg.type) {
      case "state":
        this.serverState = msg.state;
        if (msg.state === "ended") break; // "ended" says why
        this.setState(msg.state);
        if (msg.state === "listening" || msg.state === "hearing") t.settle(lang);
        break;
      case "heard":
        t.heard(msg.turn, msg.text, msg.language);
        break;
      case "said":
        t.said(msg.turn, msg.index, msg.text, lang);
        break;
      case "answer":
        t.answer(msg.turn, msg.text, msg.correction, msg.gloss, lang,
                 this.serverState !== "speaking");
        break;
      case "interrupted":
        t.interrupted(msg.turn);
        break;
      case "refused":
        t.refused(msg.turn, msg.reason || "refused");
        break;
      case "notice":
        t.notice(msg.level, msg.text);
        break;
      case "ended":
        this.ended(msg.reason);
        break;
      default:
        break; // newer servers may say more; nothing to show
    }
  }

  // ------------------------------------------------------------------ the learner's input

  setMode(mode) {
    this.mode = mode === "ptt" ? "ptt" : "handsfree";
    for (const el of document.querySelectorAll("input[name=mode]")) {
      el.checked = el.value === this.mode;
    }
    $("hold").hidden = this.mode !== "ptt";
    document.body.classList.toggle("ptt", this.mode === "ptt");
    if (this.talking) this.setTalking(false);
    if (this.channel) this.channel.send({ type: "mode", mode: this.mode });
    this.setState(this.state);
  }

  /**
   * The Mute button: the microphone sends silence until unmuted. The server is not told: it
   * hears the silence, and what was said just before the click (still on its way over the
   * network) ends its turn as speech does. ("mic-muted" reports a problem the page found.)
   */
  setMuted(on) {
    if (!this.mic || this.mic.state !== "on" || !this.channel) return;
    this.mic.setMuted(on);
    $("mute").setAttribute("aria-pressed", String(on));
    $("mute-label").textContent = on ? "Unmute mic" : "Mute mic";
    if (on && this.talking) this.setTalking(false);
    this.setState(this.state);
  }

  setTalking(down) {
    if (down === this.talking || !this.channel) return;
    if (down && (this.mode !== "ptt" || !this.mic || this.mic.state !== "on")) return;
    if (down && this.mic.muted) this.setMuted(false); // pressing to talk means "hear me"
    this.talking = down;
    $("hold").setAttribute("aria-pressed", String(down));
    $("hold").classList.toggle("down", down);
    this.channel.send({ type: "talking", down });
  }

  sayText(text) {
    const clean = text.trim();
    if (!clean || !this.channel) return false;
    this.transcript.typed(clean);
    this.channel.send({ type: "text", text: clean });
    return true;
  }

  // ------------------------------------------------------------------ long-term memory

  /**
   * "What do you remember?" (show) or "Forget me" (forget, after the visitor confirms): the
   * server's answer goes into the transcript. Forgetting clears the transcript first: the
   * conversation so far is forgotten too (a reload shows nothing of it either).
   */
  async askMemory(command) {
    if (!this.session || !this.memoryUrl || this.memoryBusy) return;
    const name = this.session.name || "the persona";
    if (command === "forget" && !window.confirm(
      `Forget me: erase everything ${name} and the other personas here remember about you, ` +
      "and this conversation so far? This cannot be undone.")) return;
    this.memoryBusy = true;
    this._memoryButtons(false);
    const res = await postJson(this.memoryUrl, { command });
    this.memoryBusy = false;
    this._memoryButtons(Boolean(this.session));
    if (!res.ok) {
      const retry = res.body.retry_after_s ? ` (try again in ${res.body.retry_after_s} s)` : "";
      this.transcript.notice("error", (res.body.error || `memory request failed (${res.status})`)
                                      + retry);
      return;
    }
    if (command === "forget") {
      for (const n of this.transcript.turns.keys()) this.forgotTurn = Math.max(this.forgotTurn, n);
      this.transcript.clear();
    }
    this.transcript.memory(command, res.body.text || "");
  }

  _memoryButtons(on) {
    for (const id of ["memory-show", "memory-forget"]) $(id).disabled = !on;
  }

  // ------------------------------------------------------------------ the end

  /** The conversation's controls: on while it runs, off once it has ended. */
  _inputs(on) {
    for (const id of ["say-text", "say-send", "end", "hold", "mute", "memory-show",
                      "memory-forget"]) $(id).disabled = !on;
  }

  _teardown() {
    if (this.link) this.link.close();
    if (this.channel) this.channel.close();
    if (this.mic) this.mic.stop();
    this.link = null;
    this.channel = null;
    this.talking = false;
    $("remote").srcObject = null;
  }

  ended(reason) {
    if (!this.session) return;
    this.endedReason = reason || "closed";
    const secs = this.session.idle_timeout_s;
    try {
      sessionStorage.removeItem(STORED + this.session.session);
    } catch (err) {
      // nothing stored
    }
    this._teardown();
    this._inputs(false);
    this.session = null;
    this._remember(null);
    this.setState("ended");
    const text = ENDED_TEXT[this.endedReason];
    $("over-title").textContent = "The conversation has ended";
    $("over-reason").textContent = text ? text(secs) : `It ended: ${this.endedReason}.`;
    $("over-reconnect").hidden = true;
    $("over").hidden = false;
    $("over-again").focus();
  }

  lost(text) {
    this.setState("lost");
    $("conn").textContent = "";
    $("over-title").textContent = "Connection lost";
    $("over-reason").textContent = text + " Reconnect to pick up where you left off, or " +
                                   "start a new conversation.";
    $("over-reconnect").hidden = false;
    $("over").hidden = false;
    $("over-reconnect").focus();
  }

  async end() {
    if (!this.session) return;
    const url = this.deleteUrl;
    this.ended("closed");
    await request(url, { method: "DELETE" });
  }

  _wire() {
    $("pick-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const persona = this.chosen();
      if (persona) this.start(persona);
    });
    $("full-retry").addEventListener("click", () => {
      clearInterval(this.fullTimer);
      this.start(this.lastChosen);
    });
    $("full-back").addEventListener("click", () => {
      clearInterval(this.fullTimer);
      this.fullUntil = null;
      this.load();
    });
    $("end").addEventListener("click", () => this.end());
    $("memory-show").addEventListener("click", () => this.askMemory("show"));
    $("memory-forget").addEventListener("click", () => this.askMemory("forget"));
    $("mute").addEventListener("click", () => this.setMuted(!(this.mic && this.mic.muted)));
    $("over-again").addEventListener("click", () => {
      this._teardown();
      this.session = null;
      this.load();
    });
    $("over-reconnect").addEventListener("click", () => {
      $("over").hidden = true;
      this.setState("reconnecting");
      if (this.channel) this.channel.retry();
      if (this.link) this.link.reconnect();
    });
    for (const el of document.querySelectorAll("input[name=mode]")) {
      el.addEventListener("change", () => { if (el.checked) this.setMode(el.value); });
    }
    $("say-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (this.sayText($("say-text").value)) $("say-text").value = "";
    });

    // Hold to talk: the button (mouse, touch, pen) or the space bar anywhere but a text box.
    const hold = $("hold");
    hold.addEventListener("pointerdown", (ev) => {
      hold.setPointerCapture(ev.pointerId);
      this.setTalking(true);
    });
    for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) {
      hold.addEventListener(name, () => this.setTalking(false));
    }
    hold.addEventListener("contextmenu", (ev) => ev.preventDefault()); // long press on touch
    const typing = (el) => el && (el.tagName === "INPUT" && el.type !== "radio"
                                  || el.tagName === "TEXTAREA" || el.isContentEditable);
    document.addEventListener("keydown", (ev) => {
      if (ev.code !== "Space" || this.mode !== "ptt" || !this.session || typing(ev.target)) return;
      ev.preventDefault();
      if (!ev.repeat) this.setTalking(true);
    });
    document.addEventListener("keyup", (ev) => {
      if (ev.code !== "Space" || this.mode !== "ptt" || typing(ev.target)) return;
      ev.preventDefault();
      this.setTalking(false);
    });
    window.addEventListener("blur", () => this.setTalking(false));

    // Closing the tab frees the conversation's place at once rather than at the idle
    // timeout. (A reload sends this too; the page comes back to ?session=&key=.)
    window.addEventListener("pagehide", () => {
      if (this.session && this.endUrl) navigator.sendBeacon(this.endUrl);
    });

    // The microphone's level, so the learner sees the page hears them.
    setInterval(() => {
      const level = this.mic && this.mic.state === "on" ? this.mic.level : 0;
      $("mic-level").style.width = `${Math.min(100, Math.round(level * 400))}%`;
    }, 100);
  }
}

const page = new TalkPage();

// What tests read (times are performance.now() milliseconds):
//   __talk.view()          "loading" | "refused" | "pick" | "full" | "talk"
//   __talk.state()         the page's state: "picking", "full", "refused", "connecting",
//                          the server's "listening" | "hearing" | "thinking" | "speaking",
//                          "reconnecting", "lost", "ended"
//   __talk.endedReason()   why the session ended ("idle", "closed", ...)
//   __talk.session()       {id, persona, language, idle_timeout_s} while one is open
//   __talk.transcript()    [{kind: "turn", turn, you, typed, language, sentences, persona,
//                          final, interrupted, refused, correction, gloss} |
//                          {kind: "notice", level, text} |
//                          {kind: "memory", command, text}] in page order
//   __talk.visitor()       this browser's visitor id (null: no storage)
//   __talk.messages(since) the server's messages with `at`, received after `since`
//   __talk.framesDrawn()   avatar frames drawn into the canvas
//   __talk.audio()         {level, loudMs, lastLoudAt, playing, paused, muted}: the voice as
//                          received (loudMs: total time it was louder than LOUD_RMS)
//   __talk.audioSeries(since)  [{t, rms}] sampled every 50 ms
//   __talk.mic()           {state, reason, level, muted, openedAt}: openedAt is when the
//                          capture began (a fake microphone's file plays from there)
//   __talk.retryIn()       seconds left before a "full" page tries again (null: not full)
//   __talk.link()          the media connection: {state, reason, events}
window.__talk = {
  page,
  now: () => performance.now(),
  view: () => document.body.dataset.view,
  state: () => page.state,
  endedReason: () => page.endedReason,
  session: () => (page.session ? { id: page.session.session, persona: page.session.persona,
                                   language: page.session.language,
                                   idle_timeout_s: page.session.idle_timeout_s } : null),
  transcript: () => page.transcript.entries(),
  messages: (since = -1) => page.messages.filter((m) => m.at > since),
  framesDrawn: () => (page.link ? page.link.framesDrawn : 0),
  audio: () => {
    const l = page.link;
    if (!l) return null;
    const v = l.video;
    const a = l.audio;
    return { level: a.level, loudMs: a.loudMs, lastLoudAt: a.lastLoudAt,
             playing: a.lastLoudAt !== null && performance.now() - a.lastLoudAt < 300,
             paused: v.paused, muted: v.muted };
  },
  audioSeries: (since = -1) => (page.link ? page.link.audio.series.filter((s) => s.t > since)
                                          : []),
  mic: () => (page.mic ? { state: page.mic.state, reason: page.mic.reason, level: page.mic.level,
                          muted: page.mic.muted, openedAt: page.mic.openedAt } : null),
  retryIn: () => page.retryIn(),
  visitor: () => visitorId(),
  link: () => (page.link ? { state: page.link.state, reason: page.link.reason,
                             events: page.link.events } : null),
};

page.load();
