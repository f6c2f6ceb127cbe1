// The studio page: type as a viewer, watch the persona answer.
"use strict";

(async function () {
  const { AvatarStage, appendLine, SpokenLines, connect, api, token, transcriptNotes } =
    window.vstage;
  const players = {}; // persona id -> its clip player (the fallback), for tests
  const avatars = {}; // persona id -> AvatarStage (live stream, clip fallback, subtitles)
  const stages = document.getElementById("stages");
  const log = document.getElementById("chat-log");
  const status = document.getElementById("status");
  const personaSelect = document.getElementById("persona");
  const formError = document.getElementById("form-error");
  const unmute = document.getElementById("unmute");

  document.getElementById("overlay-link").href = "/overlay?token=" + encodeURIComponent(token);

  let liveOn = false; // whether the server streams live (from /api/state)
  function avatarFor(id, name) {
    if (!avatars[id]) {
      avatars[id] = new AvatarStage(stages, id, name || id, {
        live: liveOn,
        onNotice: (persona, text, level) => addLine("notice " + level, names[persona] || persona,
                                                    text),
      });
      players[id] = avatars[id].clips;
    }
    return avatars[id];
  }

  function addLine(kind, who, text) {
    appendLine(log, kind, who, text, 200);
    log.scrollTop = log.scrollHeight;
  }

  // A persona's answer enters the log sentence by sentence, as it is heard: on the live
  // stream when the server performs it, in the clip player when its clip starts playing.
  const spoken = new SpokenLines(log, 200);
  const voiced = new Set(); // replies whose sentences come with their clips
  function say(persona, replyId, text) {
    spoken.say(replyId, names[persona] || persona, text);
    log.scrollTop = log.scrollHeight;
  }
  for (const name of ["vstage:clip", "vstage:spoken"]) {
    document.addEventListener(name, (ev) => {
      const clip = ev.detail;
      say(clip.persona, clip.reply_id, clip.text);
    });
  }

  // "German" for "de" (the browser's names); the code itself where it has none.
  function languageName(code) {
    try {
      const name = new Intl.DisplayNames(["en"], { type: "language" }).of(code);
      return name && name !== code ? name : code;
    } catch (err) {
      return code;
    }
  }

  const state = await api("/api/state");
  const names = {};
  liveOn = window.vstage.liveWanted(state.body);
  if (!state.body.live) addLine("notice info", "vstage", "live streaming is off: playing clips");
  for (const p of state.body.personas) {
    names[p.id] = p.name;
    const opt = document.createElement("option");
    opt.value = p.id;
    opt.textContent = p.language ? `${p.name} · ${languageName(p.language)}` : p.name;
    if (p.language) opt.dataset.language = p.language;
    personaSelect.appendChild(opt);
    avatarFor(p.id, p.name).setIdle(state.body.idle[p.id]);
  }
  window.vstage.players = players;
  window.vstage.avatars = avatars;
  const degraded = (on) => document.body.classList.toggle("degraded", on);
  degraded(!!state.body.degraded);

  document.addEventListener("vstage:sound-blocked", () => { unmute.hidden = false; });
  unmute.addEventListener("click", () => {
    for (const a of Object.values(avatars)) a.unmute();
    unmute.hidden = true;
  });

  connect({
    onOpen() { status.textContent = "live"; status.className = "status online"; },
    onClose() { status.textContent = "reconnecting…"; status.className = "status offline"; },
    onMessage(msg) {
      window.__live.mark({ type: msg.type, persona: msg.persona, reply_id: msg.reply_id,
                           index: msg.index });
      if (msg.type === "chat") addLine("viewer", msg.user, msg.text);
      else if (msg.type === "performed") {
        voiced.add(msg.reply_id);
        avatarFor(msg.persona).performed(msg);
      } else if (msg.type === "clip") {
        voiced.add(msg.reply_id);
        avatarFor(msg.persona).clip(msg);
      } else if (msg.type === "reply_done") {
        // Its sentences were shown as they were heard; a reply with nothing said shows now.
        if (!voiced.has(msg.reply_id)) say(msg.persona, msg.reply_id, msg.text);
      } else if (msg.type === "transcript") {
        // A teacher's correction and gloss, under the answer (shown now if it never was).
        if (!voiced.has(msg.reply_id) && !spoken.lines.has(msg.reply_id)) {
          say(msg.persona, msg.reply_id, msg.answer);
        }
        spoken.notes(msg.reply_id, transcriptNotes(msg));
        log.scrollTop = log.scrollHeight;
      } else if (msg.type === "reply_cancelled") avatarFor(msg.persona).cancel(msg.reply_id);
      else if (msg.type === "notice") addLine("notice " + msg.level, "vstage", msg.text);
      else if (msg.type === "degraded") {
        degraded(msg.on);
        addLine("notice warn", "vstage", msg.on ? "the show is degraded: be right back"
                                                : "the show is back");
      }
    },
  });

  // Who is waiting, per persona, in the order they will be answered.
  const queueList = document.getElementById("queue-list");
  const queueCount = document.getElementById("queue-count");
  async function refreshQueue() {
    const res = await api("/api/queue");
    if (!res.ok) return;
    const items = [];
    for (const [pid, rows] of Object.entries(res.body.queues)) {
      for (const row of rows) items.push({ pid, ...row });
    }
    queueCount.textContent = String(items.length);
    queueList.replaceChildren(...items.slice(0, 8).map((row) => {
      const li = document.createElement("li");
      if (row.paid) li.className = "paid";
      li.textContent = `${names[row.pid] || row.pid} ← ${row.user}: ${row.text}`;
      return li;
    }));
  }
  refreshQueue();
  setInterval(refreshQueue, 1000);

  // Each platform adapter's health: "twitch: up", "discord: down — why; the fix".
  const adapterList = document.getElementById("adapters");
  function adapterLine(a) {
    let line = `${a.platform}: ${a.state}`;
    if (a.state === "retrying" && a.retry_in_s != null) {
      line += ` (again in ${Math.round(a.retry_in_s)} s)`;
    }
    const why = [a.reason, a.fix].filter(Boolean).join("; ");
    if (why && a.state !== "up" && a.state !== "connecting") line += " — " + why;
    return line;
  }
  async function refreshHealth() {
    const res = await api("/api/health");
    if (!res.ok) return;
    const adapters = res.body.adapters || [];
    adapterList.hidden = adapters.length === 0;
    adapterList.replaceChildren(...adapters.map((a) => {
      const li = document.createElement("li");
      li.className = "adapter " + String(a.state).replace(/[^a-z]/g, "");
      li.dataset.platform = a.platform;
      li.textContent = adapterLine(a); // reasons quote platforms' errors: text, not markup
      li.title = li.textContent;
      return li;
    }));
  }
  refreshHealth();
  setInterval(refreshHealth, 5000);

  document.getElementById("chat-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = document.getElementById("text");
    const user = document.getElementById("user").value;
    const role = document.getElementById("role").value; // viewer unless the streamer picks
    formError.textContent = "";
    // Sending is a user gesture: let every player use sound from now on.
    for (const a of Object.values(avatars)) a.unmute();
    const res = await api("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user, role, text: text.value, persona: personaSelect.value }),
    });
    if (res.ok) text.value = "";
    else formError.textContent = res.body.error || `error ${res.status}`;
  });
})();
