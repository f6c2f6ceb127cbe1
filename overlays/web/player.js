// vstage avatar player, shared by the studio page and the OBS overlay.
//
// Clips of a reply arrive over the websocket while later sentences are still being made.
// Since issue #13 the pages play each persona's live stream (live.js); this clip player is the
// fallback for browsers without WebRTC or when the live stream is off or keeps failing.
// Two <video> elements take turns: the next clip is loaded while the current one plays, and
// the current one stays visible (holding its last frame) until the next one has really
// started, so consecutive clips show no blank gap. Between replies the idle loop plays.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const onlyPersona = params.get("persona");
  const preferred = params.get("format") || "webm";
  const PLAYED_KEPT = 200;

  function withToken(url) {
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  class AvatarPlayer {
    constructor(root, subtitleEl, persona) {
      this.root = root;
      this.subtitle = subtitleEl;
      this.persona = persona;
      this.queue = [];
      this.playing = null; // {clip, video}
      this.cancelled = new Set();
      this.played = []; // the last PLAYED_KEPT clips, for tests (an overlay runs all show)
      this.idle = this._makeVideo("idle");
      this.idle.loop = true;
      this.idle.muted = true;
      this.slots = [this._makeVideo("a"), this._makeVideo("b")];
      this.turn = 0;
      this.subtitleTimer = null;
      this.soundBlocked = false;
      this.blankFrames = 0; // animation frames with no avatar on screen (should stay 0)
      this.blankLog = [];
      this.everShown = false;
      this.suspended = false; // the live stream shows this persona: clips and idle stay off
      this._watch();
    }

    _watch() {
      const tick = () => {
        // A video that has painted a frame of its current source keeps showing it while it
        // seeks (a loop restarting dips readyState to 1 without blanking); only a source
        // with no frame yet (just loaded, emptied) is blank on screen.
        const shown = [this.idle, ...this.slots].some(
          (v) => v.style.visibility === "visible" && (v.readyState >= 2 || v._painted));
        if (shown) this.everShown = true;
        else if (this.everShown && !this.suspended) {
          this.blankFrames += 1;
          this.blankLog.push({ at: performance.now(), playing: !!this.playing,
            states: [this.idle, ...this.slots].map((v) => v.style.visibility + ":" + v.readyState) });
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }

    _makeVideo(name) {
      const v = document.createElement("video");
      v.className = "avatar-video";
      v.dataset.slot = name;
      v.playsInline = true;
      v.preload = "auto";
      v.style.visibility = "hidden";
      v._painted = false;
      v.addEventListener("loadeddata", () => { v._painted = true; });
      v.addEventListener("emptied", () => { v._painted = false; });
      this.root.appendChild(v);
      return v;
    }

    // The live stream takes over: stop and hide everything (the subtitle line stays in use).
    suspend() {
      this.suspended = true;
      this.queue = [];
      this.playing = null;
      for (const v of [this.idle, ...this.slots]) {
        v.pause();
        v.style.visibility = "hidden";
      }
    }

    // Back to clips (the live stream failed): the idle loop shows until a clip comes.
    resume() {
      if (!this.suspended) return;
      this.suspended = false;
      this.everShown = false;
      if (this.idle.src) this._showIdle();
    }

    setIdle(urls) {
      const url = urls && (urls[preferred] || urls.webm || urls.mp4);
      if (!url) return;
      if (this.idle.src !== new URL(withToken(url), location.href).href) {
        this.idle.src = withToken(url);
      }
      if (!this.playing && !this.suspended) this._showIdle();
    }

    _showIdle() {
      this.idle.style.visibility = "visible";
      this.idle.play().catch(() => {});
      for (const v of this.slots) v.style.visibility = "hidden";
    }

    enqueue(clip) {
      if (this.cancelled.has(clip.reply_id) || this.suspended) return;
      this.queue.push(clip);
      this._preload();
      if (!this.playing) this._next();
    }

    cancel(replyId) {
      this.cancelled.add(replyId);
      this.queue = this.queue.filter((c) => c.reply_id !== replyId);
      if (this.playing && this.playing.clip.reply_id === replyId) {
        this.playing.video.pause();
        this.playing = null;
        this._next();
      }
    }

    _slotFor(clip) {
      return this.slots.find((v) => v.dataset.clipKey === this._key(clip));
    }

    _key(clip) {
      return clip.reply_id + ":" + clip.index;
    }

    _preload() {
      // Load the next queued clip into the free slot while the current one plays.
      const next = this.queue[0];
      if (!next || this._slotFor(next)) return;
      // Never reuse a slot still on screen: it holds the last frame until the next clip runs.
      const free = this.slots.find(
        (v) => (!this.playing || v !== this.playing.video) && v.style.visibility !== "visible");
      if (!free) return;
      free.dataset.clipKey = this._key(next);
      free.src = withToken(next.urls[preferred] || next.urls.webm || next.urls.mp4);
      free.load();
    }

    _next() {
      const clip = this.queue.shift();
      if (!clip) {
        this.playing = null;
        this._showIdle();
        this._fadeSubtitle();
        return;
      }
      this._preload();
      let video = this._slotFor(clip);
      if (!video) {
        this.queue.unshift(clip);
        this._preload();
        video = this._slotFor(clip);
        this.queue.shift();
      }
      if (!video) {
        // Both slots busy (should not happen): take the one not playing, accept a flicker.
        video = this.slots.find((v) => !this.playing || v !== this.playing.video) || this.slots[0];
        video.dataset.clipKey = this._key(clip);
        video.src = withToken(clip.urls[preferred] || clip.urls.webm || clip.urls.mp4);
      }
      const previous = this.playing;
      this.playing = { clip, video };
      video.muted = this.soundBlocked;
      video.onplaying = () => {
        // Swap only once the new clip renders, so the screen is never empty.
        video.style.visibility = "visible";
        this.idle.style.visibility = "hidden";
        this.idle.pause();
        if (previous && previous.video !== video) previous.video.style.visibility = "hidden";
        this._preload(); // the slot just hidden can now take the clip after this one
        this._setSubtitle(clip.text);
        this.played.push({ reply_id: clip.reply_id, index: clip.index, text: clip.text,
                           at: performance.now() });
        if (this.played.length > PLAYED_KEPT) this.played.shift();
        document.dispatchEvent(new CustomEvent("vstage:clip", { detail: clip }));
      };
      video.onended = () => {
        const last = this.played[this.played.length - 1];
        if (last && last.reply_id === clip.reply_id && last.index === clip.index) {
          last.ended = performance.now();
        }
        if (this.playing && this.playing.video === video) {
          this._next();
        }
      };
      video.onerror = () => {
        console.warn("clip failed to load", clip);
        if (this.playing && this.playing.video === video) this._next();
      };
      const started = video.play();
      if (started && started.catch) {
        started.catch((err) => {
          if (err && err.name === "NotAllowedError" && !video.muted) {
            // The browser wants a click before sound; play muted and offer to unmute.
            this.soundBlocked = true;
            video.muted = true;
            document.dispatchEvent(new CustomEvent("vstage:sound-blocked"));
            video.play().catch(() => {});
          }
        });
      }
      this._preload();
    }

    _setSubtitle(text) {
      if (!this.subtitle) return;
      clearTimeout(this.subtitleTimer);
      this.subtitle.textContent = text;
      this.subtitle.classList.add("visible");
    }

    _fadeSubtitle() {
      if (!this.subtitle) return;
      clearTimeout(this.subtitleTimer);
      this.subtitleTimer = setTimeout(() => this.subtitle.classList.remove("visible"), 1500);
    }

    unmute() {
      this.soundBlocked = false;
      if (this.playing) this.playing.video.muted = false;
    }
  }

  // Personas this page plays from clip files: told to the server (on every connect and when
  // it changes) so clips are encoded only while some page needs them.
  const clipPersonas = new Set();
  let socket = null;
  function tellClips() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "clips", personas: [...clipPersonas] }));
    }
  }
  function setClipMode(persona, on) {
    const had = clipPersonas.has(persona);
    if (on) clipPersonas.add(persona);
    else clipPersonas.delete(persona);
    if (had !== on) tellClips();
  }

  function connect(handlers) {
    let backoff = 500;
    function open() {
      const proto = location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${proto}://${location.host}/ws?token=${encodeURIComponent(token)}`);
      socket = ws;
      ws.onopen = () => {
        backoff = 500;
        tellClips();
        handlers.onOpen && handlers.onOpen();
      };
      ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        if (onlyPersona && msg.persona && msg.persona !== onlyPersona) return;
        handlers.onMessage(msg);
      };
      ws.onclose = () => {
        handlers.onClose && handlers.onClose();
        setTimeout(open, backoff);
        backoff = Math.min(backoff * 2, 8000);
      };
    }
    open();
  }

  async function api(path, options) {
    const resp = await fetch(withToken(path), options);
    const body = await resp.json().catch(() => ({}));
    return { ok: resp.ok, status: resp.status, body };
  }

  // A persona's place on a page: its slot (videos), subtitle line and, optionally, a name tag.
  function mountPlayer(container, id, name) {
    const slot = document.createElement("div");
    slot.className = "avatar-slot";
    slot.dataset.persona = id;
    if (name) {
      const label = document.createElement("div");
      label.className = "persona-name";
      label.textContent = name;
      slot.appendChild(label);
    }
    const sub = document.createElement("div");
    sub.className = "subtitle";
    slot.appendChild(sub);
    container.appendChild(slot);
    return new AvatarPlayer(slot, sub, id);
  }

  // One "name: text" line at the end of a list, keeping at most `keep` lines.
  function appendLine(list, kind, who, text, keep) {
    const li = document.createElement("li");
    li.className = kind;
    const name = document.createElement("b");
    name.textContent = who;
    const body = document.createElement("span");
    body.textContent = text;
    li.append(name, body);
    list.appendChild(li);
    while (list.children.length > keep) list.removeChild(list.firstChild);
    return li;
  }

  // A persona's reply in a chat list, one line per reply that grows sentence by sentence as
  // each sentence is spoken (never the whole reply before it is heard).
  class SpokenLines {
    constructor(list, keep) {
      this.list = list;
      this.keep = keep;
      this.lines = new Map(); // reply id -> its <li>
      this.pending = new Map(); // reply id -> notes waiting for the answer's line
    }

    say(replyId, who, text) {
      let li = this.lines.get(replyId);
      if (li && li.isConnected) {
        li.querySelector("span").textContent += " " + text;
        return li;
      }
      li = appendLine(this.list, "persona", who, text, this.keep);
      li.dataset.reply = replyId;
      this.lines.set(replyId, li);
      for (const [id, el] of this.lines) if (!el.isConnected) this.lines.delete(id);
      const notes = this.pending.get(replyId);
      if (notes) {
        this.pending.delete(replyId);
        this._insertNotes(li, notes);
      }
      return li;
    }

    // A teacher's notes on an answer ("✎ correction" of what the viewer said, "≈ gloss" of
    // the answer in the viewer's language), muted lines under the answer's line. A note that
    // arrives before the answer's first sentence is heard waits for it.
    notes(replyId, notes) {
      if (!notes.length) return;
      const li = this.lines.get(replyId);
      if (li && li.isConnected) this._insertNotes(li, notes);
      else this.pending.set(replyId, notes);
    }

    _insertNotes(li, notes) {
      let after = li;
      while (after.nextElementSibling && after.nextElementSibling.classList.contains("note")
             && after.nextElementSibling.dataset.reply === li.dataset.reply) {
        after = after.nextElementSibling;
      }
      for (const { kind, mark, text } of notes) {
        const note = document.createElement("li");
        note.className = "note " + kind;
        note.dataset.reply = li.dataset.reply;
        const sign = document.createElement("b");
        sign.textContent = mark;
        const body = document.createElement("span");
        body.textContent = text; // viewer and model text: always text, never markup
        note.append(sign, body);
        after.after(note);
        after = note;
      }
      while (this.list.children.length > this.keep) this.list.removeChild(this.list.firstChild);
    }
  }

  // The notes of a "transcript" message, in the order they show under the answer.
  function transcriptNotes(msg) {
    const notes = [];
    if (msg.correction) notes.push({ kind: "correction", mark: "✎", text: msg.correction });
    if (msg.gloss) notes.push({ kind: "gloss", mark: "≈", text: msg.gloss });
    return notes;
  }

  // When each sentence is heard, from the server's "performed" messages (the live stream plays
  // a sentence as it arrives, after those before it): a persona's sentences play back to back,
  // each for its duration; a cancelled reply stops at once and the sentences after it move up.
  // Drives the chat overlay and, on live pages, the subtitles (onSpoken at a sentence's start,
  // onEnd at its end or when it is cancelled while heard).
  class SpeechClock {
    constructor(onSpoken, onEnd) {
      this.onSpoken = onSpoken;
      this.onEnd = onEnd || null;
      this.lanes = {}; // persona -> [{clip, start, end, timer}] in play order
      this.cancelled = new Set();
      this.spoken = []; // for tests: {reply_id, index, text, at}
    }

    add(clip) {
      if (this.cancelled.has(clip.reply_id)) return;
      const lane = (this.lanes[clip.persona] ||= []);
      this._schedule(lane, clip);
    }

    cancel(persona, replyId) {
      this.cancelled.add(replyId);
      const lane = this.lanes[persona];
      if (!lane) return;
      const now = performance.now();
      const kept = [];
      for (const entry of lane) {
        if (entry.clip.reply_id === replyId) {
          clearTimeout(entry.timer);
          clearTimeout(entry.endTimer);
          if (entry.start <= now && now < entry.end && this.onEnd) this.onEnd(entry.clip);
        } else kept.push(entry);
      }
      lane.length = 0;
      for (const entry of kept) {
        if (entry.start <= now) lane.push(entry);
        else {
          clearTimeout(entry.timer);
          clearTimeout(entry.endTimer);
          this._schedule(lane, entry.clip);
        }
      }
    }

    _schedule(lane, clip) {
      const now = performance.now();
      while (lane.length && lane[0].end <= now) lane.shift();
      const start = Math.max(now, ...lane.map((e) => e.end));
      const entry = { clip, start, end: start + (Number(clip.duration) || 0) * 1000 };
      entry.timer = setTimeout(() => {
        this.spoken.push({ reply_id: clip.reply_id, index: clip.index, text: clip.text,
                           at: performance.now() });
        this.onSpoken(clip);
      }, start - now);
      if (this.onEnd) entry.endTimer = setTimeout(() => this.onEnd(clip), entry.end - now);
      lane.push(entry);
    }
  }

  window.vstage = { AvatarPlayer, mountPlayer, appendLine, SpokenLines, SpeechClock, connect,
                    api, token, onlyPersona, setClipMode, transcriptNotes };
})();
