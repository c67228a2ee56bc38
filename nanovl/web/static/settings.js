// Settings: the side panel's fields, kept in localStorage, and the request fields they add.

const STORE = "nanovl.settings.v1";
const KEY_STORE = "nanovl.apiKey";
// element id -> [request field, kind]; an empty field sends nothing (the server's default)
const NUMBERS = {
  "temperature": ["temperature", "float", 0, 2],
  "top-p": ["top_p", "float", 0, 1],
  "max-tokens": ["max_tokens", "int", 1, Infinity],
  // JS numbers hold integers exactly only up to 2^53
  "seed": ["seed", "int", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  "thinking-budget": ["thinking_token_budget", "int", 0, Infinity],
};
const TEXTS = ["system-prompt", "json-schema", "extra-body"];
const LABELS = { "temperature": "Temperature", "top-p": "Top-p", "max-tokens": "Max tokens", "seed": "Seed",
                 "thinking-budget": "Thinking budget" };

/** A setting the user must fix before sending; `field` is the element id to focus. */
export class SettingsError extends Error {
  constructor(message, field) {
    super(message);
    this.name = "SettingsError";
    this.field = field;
  }
}

function parseJsonObject(text, what, field) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SettingsError(`${what} is not valid JSON: ${err.message}`, field);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new SettingsError(`${what} must be a JSON object ({...})`, field);
  }
  return value;
}

// the saved settings object; a damaged entry (not JSON, or JSON but no object) or storage the
// browser blocks gives the defaults instead of a page that cannot start
function readStored(key) {
  try {
    const value = JSON.parse(localStorage.getItem(key) || "{}");
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch (_) {
    return {};
  }
}

function readKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch (_) {
    return "";
  }
}

// blocked or full storage only loses the remembering, never the page
function store(write) {
  try {
    write();
  } catch (_) { /* settings stay for this visit */ }
}

export class Settings {
  constructor(doc = document) {
    this.doc = doc;
    this.ids = [...Object.keys(NUMBERS), ...TEXTS, "reasoning", "video-speech"];
    this.load();
    for (const id of this.ids) this.$(id).addEventListener("change", () => this.save());
    this.$("api-key").addEventListener("change", () => this.saveKey());
  }

  $(id) {
    return this.doc.getElementById(id);
  }

  load() {
    const saved = readStored(STORE);
    for (const id of this.ids) {
      if (!Object.prototype.hasOwnProperty.call(saved, id)) continue;
      const input = this.$(id);
      if (input.type === "checkbox") input.checked = Boolean(saved[id]);
      else input.value = String(saved[id]);
    }
    this.$("api-key").value = readKey();
  }

  save() {
    const values = {};
    for (const id of this.ids) {
      const input = this.$(id);
      values[id] = input.type === "checkbox" ? input.checked : input.value;
    }
    store(() => localStorage.setItem(STORE, JSON.stringify(values)));
  }

  saveKey() {
    const key = this.apiKey;
    store(() => (key ? localStorage.setItem(KEY_STORE, key) : localStorage.removeItem(KEY_STORE)));
  }

  reset() {
    store(() => localStorage.removeItem(STORE));
    for (const id of this.ids) {
      const input = this.$(id);
      if (input.type === "checkbox") input.checked = input.defaultChecked;
      else input.value = "";
    }
  }

  get apiKey() {
    return this.$("api-key").value.trim();
  }

  get reasoning() {
    return this.$("reasoning").checked;
  }

  /** Whether videos go with their transcribed speech (`"transcript": "auto"` on each video part). */
  get videoSpeech() {
    return this.$("video-speech").checked;
  }

  get systemPrompt() {
    return this.$("system-prompt").value.trim();
  }

  /** The request fields the settings add (sampling, reasoning, schema, extras); throws SettingsError. */
  requestFields() {
    const fields = { chat_template_kwargs: { enable_thinking: this.reasoning } };
    for (const [id, [name, kind, lo, hi]] of Object.entries(NUMBERS)) {
      const input = this.$(id);
      if (input.validity && input.validity.badInput) throw new SettingsError(`${LABELS[id]} must be a number`, id);
      const text = input.value.trim();
      if (text === "" || (id === "thinking-budget" && !this.reasoning)) continue;
      const value = Number(text);
      if (!Number.isFinite(value) || (kind === "int" && !Number.isInteger(value))) {
        throw new SettingsError(`${LABELS[id]} must be ${kind === "int" ? "a whole number" : "a number"}`, id);
      }
      if (value < lo || value > hi) {
        throw new SettingsError(`${LABELS[id]} must be between ${lo} and ${hi === Infinity ? "∞" : hi}`, id);
      }
      fields[name] = value;
    }
    const schemaText = this.$("json-schema").value.trim();
    if (schemaText) {
      const schema = parseJsonObject(schemaText, "The JSON schema", "json-schema");
      fields.response_format = { type: "json_schema", json_schema: { name: "answer", schema } };
    }
    const extraText = this.$("extra-body").value.trim();
    if (extraText) {
      const extra = parseJsonObject(extraText, "Extra request fields", "extra-body");
      const kwargs = { ...fields.chat_template_kwargs, ...(extra.chat_template_kwargs || {}) };
      Object.assign(fields, extra, { chat_template_kwargs: kwargs });
    }
    return fields;
  }

  /** A short line of what the next request changes from the server defaults. */
  summary() {
    const parts = [];
    for (const [id] of Object.entries(NUMBERS)) {
      const v = this.$(id).value.trim();
      if (v !== "" && !(id === "thinking-budget" && !this.reasoning)) parts.push(`${LABELS[id].toLowerCase()} ${v}`);
    }
    if (this.$("json-schema").value.trim()) parts.push("JSON schema");
    if (this.$("extra-body").value.trim()) parts.push("extra fields");
    if (this.systemPrompt) parts.push("system prompt");
    if (this.videoSpeech) parts.push("video speech");
    return parts.join(" · ");
  }
}
