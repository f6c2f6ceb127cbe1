// The studio page: type as a viewer, watch the persona answer.
"use strict";

(async function () {
  const { mountPlayer, appendLine, SpokenLines, connect, api, token } = window.vstage;
  const players = {};
  const stages = document.getElementById("stages");
  const log = document.getElementById("chat-log");
  const status = document.getElementById("status");
  const personaSelect = document.getElementById("persona");
  const formError = document.getElementById("form-error");
  const unmute = document.getElementById("unmute");

  document.getElementById("overlay-link").href = "/overlay?token=" + encodeURIComponent(token);

  function playerFor(id, name) {
    if (!players[id]) players[id] = mountPlayer(stages, id, name || id);
    return players[id];
  }

  function addLine(kind, who, text) {
    appendLine(log, kind, who, text, 200);
    log.scrollTop = log.scrollHeight;
  }

  // A persona's answer enters the log sentence by sentence, as each clip starts playing.
  const spoken = new SpokenLines(log, 200);
  const voiced = new Set(); // replies whose sentences come with their clips
  function say(persona, replyId, text) {
    spoken.say(replyId, names[persona] || persona, text);
    log.scrollTop = log.scrollHeight;
  }
  document.addEventListener("vstage:clip", (ev) => {
    const clip = ev.detail;
    say(clip.persona, clip.reply_id, clip.text);
  });

  const state = await api("/api/state");
  const names = {};
  for (const p of state.body.personas) {
    names[p.id] = p.name;
    const opt = document.createElement("option");
    opt.value = p.id;
    opt.textContent = p.name;
    personaSelect.appendChild(opt);
    playerFor(p.id, p.name).setIdle(state.body.idle[p.id]);
  }
  window.vstage.players = players;

  document.addEventListener("vstage:sound-blocked", () => { unmute.hidden = false; });
  unmute.addEventListener("click", () => {
    for (const p of Object.values(players)) p.unmute();
    unmute.hidden = true;
  });

  connect({
    onOpen() { status.textContent = "live"; status.className = "status online"; },
    onClose() { status.textContent = "reconnecting…"; status.className = "status offline"; },
    onMessage(msg) {
      if (msg.type === "chat") addLine("viewer", msg.user, msg.text);
      else if (msg.type === "clip") {
        voiced.add(msg.reply_id);
        playerFor(msg.persona).enqueue(msg);
      } else if (msg.type === "reply_done") {
        // Its sentences were shown as they played; a reply with no clip is shown now.
        if (!voiced.has(msg.reply_id)) say(msg.persona, msg.reply_id, msg.text);
      } else if (msg.type === "reply_cancelled") playerFor(msg.persona).cancel(msg.reply_id);
      else if (msg.type === "notice") addLine("notice " + msg.level, "vstage", msg.text);
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

  document.getElementById("chat-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = document.getElementById("text");
    const user = document.getElementById("user").value;
    const role = document.getElementById("role").value; // viewer unless the streamer picks
    formError.textContent = "";
    // Sending is a user gesture: let every player use sound from now on.
    for (const p of Object.values(players)) p.unmute();
    const res = await api("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user, role, text: text.value, persona: personaSelect.value }),
    });
    if (res.ok) text.value = "";
    else formError.textContent = res.body.error || `error ${res.status}`;
  });
})();
