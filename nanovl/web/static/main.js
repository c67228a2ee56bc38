// The page's wiring: model list, composer (Enter sends), attachments, settings panel, Stop, New chat.

import { listModels } from "./api.js";
import { AttachmentTray, installDropZone } from "./attachments.js";
import { Chat } from "./chat.js";
import { renderText } from "./render.js";
import { Settings, SettingsError } from "./settings.js";

const $ = (id) => document.getElementById(id);
const prompt = $("prompt");
const notice = $("notice");
const statusEl = $("status");
const modelSelect = $("model");

const settings = new Settings();
const tray = new AttachmentTray($("tray"), showNotice);
const chat = new Chat($("log"), setBusy);

// kind: "models", "settings" or "files", so that fixing one problem clears only its own notice
function showNotice(message, kind = "files") {
  const text = document.createElement("span");
  text.className = "notice-text";
  text.textContent = message;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "ghost small";
  close.textContent = "Dismiss";
  close.addEventListener("click", clearNotice);
  notice.replaceChildren(text, close);
  notice.dataset.kind = kind;
  notice.hidden = false;
}

function clearNotice() {
  notice.hidden = true;
  notice.replaceChildren();
}

function setStatus(text, state) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  document.body.classList.toggle("busy", busy);
  if (!busy) prompt.focus();
}

function setSettingsOpen(open) {
  document.body.classList.toggle("settings-open", open);
  $("settings-toggle").setAttribute("aria-expanded", String(open));
}

function updateSummary() {
  $("opts-summary").textContent = settings.summary();
}

async function loadModels() {
  setStatus("connecting…", "busy");
  const previous = modelSelect.value;
  try {
    const models = await listModels(settings.apiKey);
    modelSelect.replaceChildren(...models.map((m) => {
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = m.max_model_len ? `${m.id} · ${m.max_model_len} ctx` : m.id;
      return option;
    }));
    if (models.some((m) => m.id === previous)) modelSelect.value = previous;
    setStatus(models.length ? "ready" : "no models", models.length ? "ok" : "error");
    if (!notice.hidden && notice.dataset.kind === "models") clearNotice();
  } catch (err) {
    const needsKey = err.status === 401;
    setStatus(needsKey ? "API key needed" : "offline", "error");
    showNotice(needsKey ? "This server needs an API key: enter it under Settings."
                        : `Cannot list the models: ${err.message}`, "models");
    if (needsKey) {
      setSettingsOpen(true);
      $("api-key").focus();
    }
  }
}

function autosize() {
  prompt.style.height = "auto";
  prompt.style.height = `${Math.min(prompt.scrollHeight + 2, 220)}px`;
  // a scrollbar only once the text outgrows the box
  prompt.style.overflowY = prompt.scrollHeight + 2 > 220 ? "auto" : "hidden";
}

async function submit() {
  if (chat.busy) return;
  const text = prompt.value.trim();
  if (!text && tray.items.length === 0) return;
  let fields;
  try {
    fields = settings.requestFields();
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    showNotice(err.message, "settings");
    setSettingsOpen(true);
    $(err.field).focus();
    return;
  }
  clearNotice();
  const attachments = tray.take();
  prompt.value = "";
  autosize();
  $("empty").hidden = true;
  await chat.send(text, attachments, { model: modelSelect.value, system: settings.systemPrompt, fields,
                                       apiKey: settings.apiKey, videoSpeech: settings.videoSpeech });
}

function newChat() {
  chat.reset();
  tray.clear();
  clearNotice();
  $("empty").hidden = false;
  prompt.value = "";
  autosize();
  prompt.focus();
}

// ---- events
$("composer").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
prompt.addEventListener("keydown", (e) => {
  // Enter sends; Shift+Enter (and Enter while an IME composes) adds a line
  if (e.key === "Enter" && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.isComposing) {
    e.preventDefault();
    submit();
  } else if (e.key === "Escape" && chat.busy) {
    chat.stop();
  }
});
prompt.addEventListener("input", autosize);
prompt.addEventListener("paste", (e) => {
  const files = Array.from(e.clipboardData?.files || []);
  if (files.length) {
    e.preventDefault();
    tray.add(files);
  }
});
$("stop").addEventListener("click", () => chat.stop());
$("new-chat").addEventListener("click", newChat);
$("attach").addEventListener("click", () => $("file-input").click());
$("file-input").addEventListener("change", (e) => {
  tray.add(Array.from(e.target.files));
  e.target.value = "";
});
installDropZone(document.body, $("drop-overlay"), (files) => tray.add(files));
// Escape closes the settings sheet on small screens (in the composer it stops a generation instead)
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && e.target !== prompt && !window.matchMedia("(min-width: 1000px)").matches) {
    setSettingsOpen(false);
  }
});
$("settings-toggle").addEventListener("click", () => {
  setSettingsOpen(!document.body.classList.contains("settings-open"));
});
$("api-key").addEventListener("change", loadModels);
$("settings").addEventListener("change", updateSummary);
$("reasoning").addEventListener("change", updateSummary);
$("reset-settings").addEventListener("click", () => { settings.reset(); updateSummary(); });

setSettingsOpen(window.matchMedia("(min-width: 1000px)").matches);
updateSummary();
autosize();
loadModels();
prompt.focus();

// a handle for the console and the browser tests
window.nanovl = { renderText, chat, settings, loadModels };
