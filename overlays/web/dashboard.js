// The streamer's dashboard: personas (edit, create, previews, art, cards), the live show's
// controls, the moderation audit log and the health of platforms and workers.
// Plain ES module, no build step. Everything from the server is shown as text, never markup.

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const h = { Authorization: `Bearer ${token}`, ...headers };
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body });
  } catch (err) {
    return { ok: false, status: 0, body: { error: "the studio is not reachable" } };
  }
  const type = res.headers.get("Content-Type") || "";
  const out = type.includes("json") ? await res.json().catch(() => ({})) : await res.blob();
  return { ok: res.ok, status: res.status, body: out };
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function say(node, text, kind = "") {
  node.textContent = text || "";
  node.dataset.kind = kind;
}

$("studio-link").href = "/studio?token=" + encodeURIComponent(token);

// ------------------------------------------------------------------------------ tabs

const tabs = [...document.querySelectorAll('[role="tab"]')];
const refreshers = {};
function selectTab(tab, focus = true) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  const id = tab.getAttribute("aria-controls");
  // replaceState, not location.hash: jumping to the fragment would take the focus away.
  history.replaceState(null, "", `${location.pathname}${location.search}#${id}`);
  if (refreshers[id]) refreshers[id]();
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (ev) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
    if (step) {
      ev.preventDefault();
      selectTab(tabs[(i + step + tabs.length) % tabs.length]);
    }
  });
});

// ------------------------------------------------------------------------------ personas

let specs = [];
let specByKey = {};
let current = null; // {id, version, values, text, isNew}
let yamlMode = false;
const form = $("persona-form");
const editorStatus = $("editor-status");
const problemsBox = $("editor-problems");

const fieldKey = (spec) => (spec.variant ? `${spec.path}@${spec.variant.split(":")[1]}` : spec.path);
const domId = (key) => "f-" + key.replace(/\./g, "__").replace(/@/g, "--");
const GROUP_TITLES = {
  "": "Who the persona is", llm: "Thinking (LLM)", voice: "Voice", avatar: "Avatar",
  queue: "Queue", moderation: "Moderation", twitch: "Twitch", teacher: "Language teacher",
  memory: "Memory of viewers", story: "Story (Character Card fields)", lorebook: "Lorebook",
};
// Fields a Character Card brings; they go together, after the persona's own settings.
const STORY = ["scenario", "example_dialogue", "post_history_instructions", "tags", "card"];

function groupOf(spec) {
  const top = spec.path.split(".")[0];
  if (STORY.includes(top)) return "story";
  if (!spec.path.includes(".") && !["avatar", "teacher", "lorebook"].includes(top)) return "";
  return top;
}

async function loadSchema() {
  const res = await api("/api/dashboard/schema");
  if (!res.ok) throw new Error(res.body.error || "no schema");
  specs = res.body.fields;
  specByKey = Object.fromEntries(specs.map((s) => [fieldKey(s), s]));
}

function labelText(spec) {
  const parts = spec.path.split(".");
  return parts.slice(1).join(" › ") || parts[0];
}

function inputFor(spec, value) {
  const key = fieldKey(spec);
  const id = domId(key);
  const describedBy = `${id}-help ${id}-err`;
  const common = { id, name: key, "aria-describedby": describedBy, dataset: { key } };
  let input;
  if (spec.kind === "bool") {
    input = el("input", { ...common, type: "checkbox" });
    input.checked = !!value;
  } else if (spec.kind === "choice") {
    input = el("select", common);
    if (spec.nullable) input.append(el("option", { value: "" }, "(unset)"));
    for (const o of spec.options) input.append(el("option", { value: o }, o));
    input.value = value == null ? "" : String(value);
  } else if (spec.kind === "textarea" || spec.kind === "yaml" || spec.kind === "list") {
    const rows = spec.kind === "textarea" ? 4 : spec.kind === "yaml" ? 5 : 3;
    input = el("textarea", { ...common, rows, spellcheck: spec.kind === "textarea" ? "true" : "false" });
    input.value = spec.kind === "list" ? (value || []).join("\n") : value == null ? "" : String(value);
  } else {
    const numeric = spec.kind === "integer" || spec.kind === "number";
    input = el("input", { ...common, type: "text", inputmode: numeric ? "decimal" : null,
                          autocomplete: "off" });
    input.value = value == null ? "" : String(value);
  }
  if (spec.required) input.setAttribute("aria-required", "true");
  const hint = spec.kind === "list" ? " (one per line)" : spec.kind === "yaml" ? " (YAML)" : "";
  const label = el("label", { for: id }, labelText(spec) + (spec.required ? " *" : "") + hint);
  const help = el("p", { id: `${id}-help`, class: "help" }, spec.description || "");
  const err = el("p", { id: `${id}-err`, class: "field-error", "aria-live": "polite" });
  return el("div", { class: `field kind-${spec.kind}`, dataset: { key } }, label, input, help, err);
}

function buildForm(values, isNew) {
  form.replaceChildren();
  const groups = new Map([["", []]]);
  for (const spec of specs) {
    const g = groupOf(spec);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(spec);
  }
  for (const [g, list] of groups) {
    const box = g === "" ? el("fieldset", { class: "group main-group" }, el("legend", {}, GROUP_TITLES[""]))
      : el("details", { class: "group", dataset: { group: g } },
           el("summary", {}, GROUP_TITLES[g] || g));
    for (const spec of list) {
      const key = fieldKey(spec);
      if (spec.kind === "section") {
        const id = domId(key);
        const cb = el("input", { type: "checkbox", id, dataset: { key, section: spec.path } });
        cb.checked = !!values[key];
        cb.addEventListener("change", () => syncSections());
        box.append(el("div", { class: "field section-switch" },
                      el("label", { for: id }, cb, ` use ${GROUP_TITLES[spec.path] || spec.path}`),
                      el("p", { class: "help" }, spec.description || ""),
                      el("p", { id: `${id}-err`, class: "field-error" })));
        continue;
      }
      if (spec.kind === "variant") {
        const id = domId(key);
        const select = el("select", { id, dataset: { key, variant: spec.path },
                                      "aria-describedby": `${id}-err` });
        for (const o of spec.options) select.append(el("option", { value: o }, o));
        select.value = values[key];
        select.addEventListener("change", () => syncSections());
        box.append(el("div", { class: "field" },
                      el("label", { for: id }, `${spec.key || "kind"}`), select,
                      el("p", { id: `${id}-err`, class: "field-error" })));
        continue;
      }
      const field = inputFor(spec, values[key]);
      if (spec.path === "id" && !isNew) {
        field.querySelector("input").readOnly = true;
        field.querySelector(".help").textContent = "The file name; duplicate to change it.";
      }
      if (spec.variant) field.dataset.variant = spec.variant;
      box.append(field);
    }
    form.append(box);
  }
  syncSections();
}

function syncSections() {
  const variants = {};
  for (const s of form.querySelectorAll("select[data-variant]")) variants[s.dataset.variant] = s.value;
  const off = [...form.querySelectorAll("input[data-section]")].filter((c) => !c.checked)
    .map((c) => c.dataset.section);
  for (const f of form.querySelectorAll(".field[data-key]")) {
    const spec = specByKey[f.dataset.key];
    if (!spec) continue;
    let hidden = off.some((p) => spec.path.startsWith(p + "."));
    if (spec.variant) {
      const [group, tag] = spec.variant.split(":");
      hidden = hidden || variants[group] !== tag;
    }
    f.hidden = hidden;
  }
}

function collectFields() {
  const fields = {};
  for (const node of form.querySelectorAll("[data-key]")) {
    if (node.classList.contains("field")) continue;
    const key = node.dataset.key;
    const spec = specByKey[key];
    if (node.dataset.section) { fields[key] = node.checked; continue; }
    if (node.dataset.variant) { fields[key] = node.value; continue; }
    if (!spec || node.closest(".field").hidden) continue;
    if (spec.kind === "bool") fields[key] = node.checked;
    else if (spec.kind === "list") fields[key] = node.value.split("\n").map((x) => x.trim()).filter(Boolean);
    else if (spec.kind === "choice") fields[key] = node.value === "" ? null : node.value;
    else fields[key] = node.value;
  }
  return fields;
}

// Errors name fields as the loader does ("avatar.sprite.fps", "tags.2"): find the form field.
function keyForError(field) {
  if (!field) return null;
  const variants = specs.filter((s) => s.kind === "variant");
  for (const v of variants) {
    for (const tag of v.options) {
      const prefix = `${v.path}.${tag}.`;
      if (field.startsWith(prefix)) {
        const rest = field.slice(prefix.length).split(".");
        for (let n = rest.length; n > 0; n--) {
          const key = `${v.path}.${rest.slice(0, n).join(".")}@${tag}`;
          if (specByKey[key]) return key;
        }
        return v.path;
      }
    }
  }
  const parts = field.split(".");
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join(".");
    if (specByKey[key]) return key;
    const inVariant = Object.keys(specByKey).find((k) => k.startsWith(key + "@") &&
      !form.querySelector(`.field[data-key="${CSS.escape(k)}"]`)?.hidden);
    if (inVariant) return inVariant;
  }
  return null;
}

function clearErrors() {
  for (const e of form.querySelectorAll(".field-error")) e.textContent = "";
  for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  problemsBox.hidden = true;
  problemsBox.replaceChildren();
}

function showErrors(errors) {
  clearErrors();
  const loose = [];
  let first = null;
  for (const e of errors) {
    const key = yamlMode ? null : keyForError(e.field);
    const id = key ? domId(key) : null;
    const slot = id ? $(`${id}-err`) : null;
    if (!slot) { loose.push(e); continue; }
    const line = e.field && e.field !== key && !key.includes("@") ? `${e.field}: ` : "";
    slot.textContent = (slot.textContent ? slot.textContent + " · " : "") + line + e.message;
    const input = $(id);
    if (input) input.setAttribute("aria-invalid", "true");
    const details = slot.closest("details");
    if (details) details.open = true;
    first = first || input;
  }
  if (loose.length) {
    problemsBox.hidden = false;
    problemsBox.append(el("p", {}, "Problems:"), el("ul", {}, ...loose.map((e) =>
      el("li", {}, `${e.line ? `line ${e.line}: ` : ""}${e.field ? e.field + ": " : ""}${e.message}`))));
  }
  if (first && !yamlMode) first.focus();
}

async function refreshList(select) {
  const res = await api("/api/dashboard/personas");
  if (!res.ok) return;
  const list = $("persona-list");
  list.replaceChildren(...res.body.personas.map((p) => {
    const badges = [];
    if (p.default) badges.push("default");
    badges.push(p.on_show ? "on show" : "not on show");
    if (p.problems.length) badges.push("has problems");
    const b = el("button", { type: "button", class: "persona-item", dataset: { id: p.id },
                             "aria-current": current && current.id === p.id ? "true" : null,
                             onclick: () => openPersona(p.id) },
                 el("span", { class: "pname" }, p.name),
                 el("span", { class: "pid" }, p.id),
                 el("span", { class: "badges" }, badges.join(" · ")));
    return el("li", {}, b);
  }));
  const personas = res.body.personas.map((p) => p.id);
  const auditSel = $("audit-persona");
  const keep = auditSel.value;
  auditSel.replaceChildren(el("option", { value: "" }, "all"),
                           ...personas.map((id) => el("option", { value: id }, id)));
  auditSel.value = keep;
  if (select) openPersona(select);
}

function setEditing(on) {
  for (const id of ["save", "mode", "duplicate", "delete", "voice-play", "avatar-play"]) $(id).disabled = !on;
}

async function openPersona(pid) {
  const res = await api(`/api/dashboard/personas/${encodeURIComponent(pid)}`);
  if (!res.ok) { say(editorStatus, res.body.error, "error"); return; }
  current = { id: pid, version: res.body.version, values: res.body.values, text: res.body.text,
              isNew: false };
  $("editor-title").textContent = `Persona: ${res.body.values.name || pid}`;
  $("conflict").hidden = true;
  buildForm(res.body.values, false);
  $("yaml-text").value = res.body.text;
  setMode(yamlMode);
  setEditing(true);
  $("art-name").value = $("art-name").value || pid;
  say(editorStatus, res.body.on_show ? "On the show. Saving applies the change live." :
      "Not on the show: saving puts it on the show.");
  if (res.body.errors.length) showErrors(res.body.errors); else clearErrors();
  for (const b of document.querySelectorAll(".persona-item")) {
    if (b.dataset.id === pid) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
}

function newPersona() {
  const values = {};
  for (const s of specs) {
    const key = fieldKey(s);
    if (s.kind === "variant") values[key] = (s.default && s.default[s.key]) || s.options[0];
    else if (s.kind === "section") values[key] = false;
    else if (s.kind === "yaml") values[key] = s.default == null ? "" : JSON.stringify(s.default);
    else values[key] = s.default;
  }
  current = { id: null, version: null, values, text: "", isNew: true };
  $("editor-title").textContent = "New persona";
  $("conflict").hidden = true;
  setMode(false);
  buildForm(values, true);
  clearErrors();
  setEditing(true);
  $("duplicate").disabled = $("delete").disabled = $("mode").disabled = true;
  $("voice-play").disabled = $("avatar-play").disabled = true;
  say(editorStatus, "Fill in at least the id, the name and the personality, then save.");
  $(domId("id")).focus();
}

function setMode(yaml) {
  yamlMode = yaml;
  form.hidden = yaml;
  $("yaml-view").hidden = !yaml;
  $("mode").setAttribute("aria-pressed", String(yaml));
  $("mode").textContent = yaml ? "Edit as form" : "Edit as YAML";
}

$("mode").addEventListener("click", async () => {
  if (!current || current.isNew) return;
  if (!yamlMode) {
    // The form's values, shown as the file they would write (not saved yet).
    const res = await api(`/api/dashboard/personas/${current.id}/validate`,
                          { method: "POST", json: { fields: collectFields() } });
    if (res.ok) $("yaml-text").value = res.body.text;
    setMode(true);
    $("yaml-text").focus();
  } else {
    await openPersonaKeepingVersion();
  }
});

async function openPersonaKeepingVersion() {
  // Back to the form from YAML: the form shows the file as saved.
  setMode(false);
  await openPersona(current.id);
}

$("save").addEventListener("click", async () => {
  if (!current) return;
  const payload = yamlMode ? { text: $("yaml-text").value } : { fields: collectFields() };
  say(editorStatus, "Saving…", "busy");
  $("save").disabled = true;
  let res;
  if (current.isNew) {
    res = await api("/api/dashboard/personas", { method: "POST", json: payload });
  } else {
    res = await api(`/api/dashboard/personas/${current.id}`, { method: "PUT",
                    json: { ...payload, version: current.version } });
  }
  $("save").disabled = false;
  if (res.status === 422 && res.body.errors) {
    say(editorStatus, `Not saved: ${res.body.errors.length} problem(s), shown beside the fields.`, "error");
    showErrors(res.body.errors);
    return;
  }
  if (res.status === 409) {
    say(editorStatus, "Not saved: the file changed.", "error");
    $("conflict-text").textContent = res.body.error;
    $("conflict").hidden = false;
    $("conflict-reload").focus();
    return;
  }
  if (!res.ok) { say(editorStatus, res.body.error || `error ${res.status}`, "error"); return; }
  clearErrors();
  const applied = res.body.applied;
  let msg = "Saved.";
  if (applied && applied.ok) {
    msg += applied.added ? " It is on the show now." : " The show uses it now.";
    if (applied.notes && applied.notes.length) msg += " " + applied.notes.join("; ") + ".";
  } else if (applied) msg += " " + applied.error;
  await refreshList();
  const pid = res.body.id;
  await openPersona(pid);
  say(editorStatus, msg, "ok");
});

$("conflict-reload").addEventListener("click", () => current && openPersona(current.id));

$("duplicate").addEventListener("click", async () => {
  if (!current || current.isNew) return;
  const id = prompt("Id of the copy (a-z, 0-9, _ and -):", `${current.id}-copy`);
  if (!id) return;
  const res = await api(`/api/dashboard/personas/${current.id}/duplicate`,
                        { method: "POST", json: { id, name: null } });
  if (!res.ok) { say(editorStatus, res.body.error || `error ${res.status}`, "error"); return; }
  await refreshList(res.body.id);
  say(editorStatus, `Copied to ${res.body.id}.`, "ok");
});

$("delete").addEventListener("click", async () => {
  if (!current || current.isNew) return;
  if (!confirm(`Delete persona ${current.id}? The file is moved to .trash/ and it leaves the show.`)) return;
  const res = await api(`/api/dashboard/personas/${current.id}?version=${encodeURIComponent(current.version)}`,
                        { method: "DELETE" });
  if (!res.ok) { say(editorStatus, res.body.error || `error ${res.status}`, "error"); return; }
  current = null;
  form.replaceChildren();
  setEditing(false);
  $("editor-title").textContent = "Choose a persona";
  say(editorStatus, `Deleted (kept in ${res.body.kept_in}).`, "ok");
  await refreshList();
});

$("new-persona").addEventListener("click", newPersona);

// Previews ---------------------------------------------------------------------------------

async function preview(kind, textId, mediaId, statusId) {
  if (!current || current.isNew) return;
  const status = $(statusId);
  say(status, kind === "voice" ? "Speaking…" : "Rendering…", "busy");
  const res = await api(`/api/dashboard/personas/${current.id}/${kind}`,
                        { method: "POST", json: { text: $(textId).value } });
  if (!res.ok) { say(status, res.body.error || `error ${res.status}`, "error"); return; }
  const media = $(mediaId);
  if (media.src) URL.revokeObjectURL(media.src);
  media.src = URL.createObjectURL(res.body);
  media.hidden = false;
  say(status, kind === "voice" ? "The persona's voice, as it speaks on the show." :
      "Idle first, then the line lip-synced.", "ok");
  media.play().catch(() => {});
}
$("voice-play").addEventListener("click", () => preview("voice", "voice-text", "voice-audio", "voice-status"));
$("avatar-play").addEventListener("click", () => preview("avatar", "avatar-text", "avatar-video", "avatar-status"));

// Sprite art -----------------------------------------------------------------------------

$("art-upload").addEventListener("click", async () => {
  const out = $("art-result");
  const name = $("art-name").value.trim();
  const files = $("art-files").files;
  if (!name || !files.length) { out.replaceChildren(el("p", { class: "error" }, "Give a folder name and choose the files.")); return; }
  const data = new FormData();
  for (const f of files) data.append("file", f, f.name);
  out.replaceChildren(el("p", {}, "Uploading…"));
  const res = await api(`/api/dashboard/avatars/${encodeURIComponent(name)}`, { method: "POST", body: data });
  const b = res.body;
  if (res.status !== 201 && res.status !== 422) { out.replaceChildren(el("p", { class: "error" }, b.error || `error ${res.status}`)); return; }
  const parts = [el("p", { class: b.installed ? "ok" : "error" }, b.installed
    ? `Installed in ${b.folder}. Set avatar › sprites to "${b.folder}" to use it.`
    : `Not installed (kept in ${b.folder}): fix these and upload again.`)];
  if (b.problems.length) parts.push(el("ul", { class: "missing", "aria-label": "what is missing" }, ...b.problems.map((p) => el("li", {}, p))));
  if (b.notes.length) parts.push(el("ul", { class: "notes", "aria-label": "notes" }, ...b.notes.map((p) => el("li", {}, p))));
  out.replaceChildren(...parts);
});

// Character Cards --------------------------------------------------------------------------

async function importCard(file) {
  const status = $("card-status");
  say(status, `Importing ${file.name}…`, "busy");
  const res = await api(`/api/dashboard/cards?name=${encodeURIComponent(file.name)}`,
                        { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
  if (!res.ok) { say(status, res.body.error || `error ${res.status}`, "error"); return; }
  const notes = (res.body.warnings || []).join("; ");
  say(status, `Imported as ${res.body.id}.${notes ? " " + notes : ""}`, "ok");
  await refreshList(res.body.id);
}
const drop = $("card-drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  const file = ev.dataTransfer.files[0];
  if (file) importCard(file);
});
$("card-file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (file) importCard(file);
  ev.target.value = "";
});

// ------------------------------------------------------------------------------ live

const liveBox = $("live-personas");
const liveCards = {};

function liveCard(p) {
  if (liveCards[p.id]) return liveCards[p.id];
  const id = (s) => `live-${p.id}-${s}`;
  const act = (action) => async () => {
    const res = await api(`/api/dashboard/live/${p.id}/${action}`, { method: "POST" });
    say($(id("status")), res.ok ? `${action}: done` + (res.body.cleared != null ? ` (${res.body.cleared} dropped)` : "") +
        (res.body.skipped === false ? " (nothing to skip)" : "") : res.body.error, res.ok ? "ok" : "error");
    refreshLive();
  };
  const modOnly = el("input", { type: "checkbox", id: id("modonly") });
  modOnly.addEventListener("change", async () => {
    const res = await api(`/api/dashboard/live/${p.id}/mod-only`, { method: "POST", json: { on: modOnly.checked } });
    say($(id("status")), res.ok ? `mod-only ${res.body.mod_only ? "on" : "off"}` : res.body.error, res.ok ? "ok" : "error");
  });
  const card = el("article", { class: "live-card", "aria-labelledby": id("h"), dataset: { persona: p.id } },
    el("h3", { id: id("h") }, el("span", { class: "lname" }), " ", el("span", { class: "state" })),
    el("div", { class: "toolbar", role: "toolbar", "aria-label": `${p.name} controls` },
      el("button", { type: "button", class: "pause", onclick: act("pause") }, "Pause"),
      el("button", { type: "button", class: "resume", onclick: act("resume") }, "Resume"),
      el("button", { type: "button", class: "skip", onclick: act("skip") }, "Skip"),
      el("button", { type: "button", class: "clear danger", onclick: act("clear") }, "Clear queue"),
      el("label", { for: id("modonly"), class: "switch" }, modOnly, " mod-only")),
    el("p", { id: id("status"), role: "status", class: "status-line" }),
    el("h4", {}, "Queue"), el("ol", { class: "queue" }),
    el("h4", {}, "Recent outcomes"), el("ul", { class: "recent" }));
  liveCards[p.id] = card;
  liveBox.append(card);
  return card;
}

async function refreshLive() {
  const res = await api("/api/dashboard/live");
  if (!res.ok) { say($("live-status"), res.body.error, "error"); return; }
  say($("live-status"), res.body.healthy ? "" : "The show is degraded: be right back is on.",
      res.body.healthy ? "" : "error");
  const seen = new Set();
  for (const p of res.body.personas) {
    seen.add(p.id);
    const card = liveCard(p);
    card.querySelector(".lname").textContent = p.name;
    card.querySelector(".state").textContent = `${p.paused ? "paused" : "answering"}${p.on_stage ? " · on stage" : ""}`;
    card.dataset.paused = String(p.paused);
    card.querySelector("button.pause").disabled = p.paused;
    card.querySelector("button.resume").disabled = !p.paused;
    const modOnly = card.querySelector('input[type="checkbox"]');
    if (document.activeElement !== modOnly) modOnly.checked = p.mod_only;
    const queue = card.querySelector(".queue");
    queue.replaceChildren(...(p.queue.length ? p.queue.map((row) => el("li", { dataset: { trace: row.trace_id } },
      el("span", { class: "who" }, `${row.user}${row.paid ? " ★" : ""}: `),
      el("span", { class: "what" }, row.text), " ",
      el("button", { type: "button", class: "small", "aria-label": `answer ${row.user} next`,
                     onclick: () => queueAction(p.id, row.trace_id, "promote") }, "Promote"),
      el("button", { type: "button", class: "small danger", "aria-label": `remove ${row.user}'s message`,
                     onclick: () => queueAction(p.id, row.trace_id, "remove") }, "Remove")))
      : [el("li", { class: "empty" }, "nobody is waiting")]));
    const recent = card.querySelector(".recent");
    recent.replaceChildren(...p.recent.map((t) => el("li", { class: `st-${t.status}` },
      el("b", {}, t.status), ` ${t.user}: ${t.text}${t.reason ? ` — ${t.reason}` : ""}`)));
  }
  for (const [pid, card] of Object.entries(liveCards)) {
    if (!seen.has(pid)) { card.remove(); delete liveCards[pid]; }
  }
}

async function queueAction(pid, trace, action) {
  const res = await api(`/api/dashboard/live/${pid}/queue/${encodeURIComponent(trace)}/${action}`, { method: "POST" });
  say($(`live-${pid}-status`), res.ok ? `${action}: done` : res.body.error, res.ok ? "ok" : "error");
  refreshLive();
}

// ------------------------------------------------------------------------------ audit

async function refreshAudit() {
  const q = new URLSearchParams({ persona: $("audit-persona").value, decision: $("audit-decision").value,
                                  q: $("audit-text").value, n: "300" });
  const res = await api(`/api/dashboard/audit?${q}`);
  if (!res.ok) { say($("audit-status"), res.body.error, "error"); return; }
  say($("audit-status"), res.body.note || `${res.body.entries.length} decision(s), newest first.`);
  $("audit-table").tBodies[0].replaceChildren(...res.body.entries.map((e) => el("tr", { class: `d-${e.decision}` },
    ...[e.ts, e.persona, e.stage, e.decision, e.viewer_name, e.rule, e.reason, e.text]
      .map((v) => el("td", {}, v == null ? "" : String(v))))));
}
$("audit-form").addEventListener("submit", (ev) => { ev.preventDefault(); refreshAudit(); });

// ------------------------------------------------------------------------------ health

async function refreshHealth() {
  const res = await api("/api/dashboard/health");
  if (!res.ok) return;
  $("health-adapters").replaceChildren(...res.body.adapters.map((a) => el("li", { class: `h-${a.state}` },
    el("b", {}, `${a.platform}: ${a.state}`),
    [a.reason, a.fix].filter(Boolean).length ? ` — ${[a.reason, a.fix].filter(Boolean).join("; ")}` : "")));
  const w = res.body.workers || {};
  const rows = [];
  const add = (k, v) => rows.push(el("dt", {}, k), el("dd", {}, v));
  add("show", w.show || "not running");
  add("live stream", res.body.live ? "on (WebRTC)" : "off: the pages play clips");
  add("failures survived", Object.entries(w.errors || {}).map(([k, v]) => `${k}: ${v}`).join(", ") || "none");
  if (w.render_pool) add("render pool", `${w.render_pool.kind}${w.render_pool.pending != null ? `, ${w.render_pool.pending} waiting` : ""}`);
  for (const [pid, l] of Object.entries(w.llm || {})) add(`${pid} LLM`, `${l.provider} ${l.model}`);
  for (const [pid, t] of Object.entries(w.tts || {})) add(`${pid} voice`, `${t.provider} ${t.model}`);
  $("health-workers").replaceChildren(...rows);
}

// ------------------------------------------------------------------------------ start

refreshers.live = refreshLive;
refreshers.audit = refreshAudit;
refreshers.health = refreshHealth;
refreshers.personas = () => refreshList();

setInterval(() => { if (!$("live").hidden) refreshLive(); }, 1500);
setInterval(() => { if (!$("health").hidden) refreshHealth(); }, 5000);
// The audit log is written every half second: a decision just made shows on the next look.
setInterval(() => { if (!$("audit").hidden) refreshAudit(); }, 3000);

(async () => {
  await loadSchema();
  await refreshList();
  const start = tabs.find((t) => "#" + t.getAttribute("aria-controls") === location.hash);
  if (start) selectTab(start, false);
  window.__dashboard = { ready: true, openPersona, refreshLive, refreshAudit };
})();
