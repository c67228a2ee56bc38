// One conversation: the messages kept so far, one streamed turn at a time, Stop and New chat.

import { streamChat } from "./api.js";
import { contentPart } from "./attachments.js";
import { assistantMessage, userMessage } from "./render.js";

function errorText(err) {
  if (err.code === "network") return `Network error: ${err.message}`;
  if (err.status) return `Error ${err.status}: ${err.message}`;
  return `Error: ${err.message}`;
}

/** The state of one streamed answer and its rendering (at most once a frame). */
class Turn {
  constructor(view) {
    this.view = view;
    this.reasoning = "";
    this.answer = "";
    this.usage = null;
    this.finishReason = null;
    this.t0 = performance.now();
    this.tFirst = null;
    this.tAnswer = null;
    this.scheduled = false;
    this.handlers = {
      onReasoning: (t) => { this.reasoning += t; this.touch(); },
      onContent: (t) => {
        this.answer += t;
        if (this.tAnswer === null) this.tAnswer = performance.now();
        this.touch();
      },
      onFinish: (reason) => { this.finishReason = reason; },
      onUsage: (usage) => { this.usage = usage; },
    };
  }

  touch() {
    if (this.tFirst === null) this.tFirst = performance.now();
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.draw(); });
  }

  draw() {
    this.view.setReasoning(this.reasoning);
    if (this.answer) {
      this.view.closeThought(((this.tAnswer ?? performance.now()) - this.t0) / 1000);
      this.view.setAnswer(this.answer);
    }
  }

  finish(stopped = false) {
    const tEnd = performance.now();
    this.draw();
    this.view.closeThought(this.tAnswer === null ? null : (this.tAnswer - this.t0) / 1000);
    this.view.done();
    this.view.setMeta(this.metaParts(tEnd, stopped));
    if (this.answer) this.view.addCopy(() => this.answer);
  }

  fail(err) {
    this.draw();
    this.view.closeThought(null);
    this.view.done();
    this.view.showError(errorText(err));
  }

  metaParts(tEnd, stopped) {
    const parts = [];
    const u = this.usage;
    if (u) {
      parts.push(`${u.completion_tokens} tokens`);
      const decodeS = this.tFirst === null ? 0 : (tEnd - this.tFirst) / 1000;
      if (u.completion_tokens > 1 && decodeS > 0.001) parts.push(`${((u.completion_tokens - 1) / decodeS).toFixed(1)} tok/s`);
      if (this.tFirst !== null) parts.push(`first token ${((this.tFirst - this.t0) / 1000).toFixed(2)} s`);
      parts.push(`prompt ${u.prompt_tokens} tokens`);
    }
    if (this.finishReason === "length") parts.push("cut at the max tokens limit");
    if (stopped) parts.push(`stopped after ${((tEnd - this.t0) / 1000).toFixed(1)} s`);
    return parts;
  }
}

export class Chat {
  constructor(logEl, onBusy) {
    this.logEl = logEl;
    this.onBusy = onBusy;
    this.history = [];
    this.controller = null;
    this.previewUrls = [];
    // bumped by reset(): a turn still ending from the old conversation must not join the new one
    this.epoch = 0;
    // follow the answer down unless the reader scrolled up to read something else
    this.stick = true;
    logEl.addEventListener("scroll", () => {
      this.stick = logEl.scrollHeight - logEl.scrollTop - logEl.clientHeight < 60;
    });
    // the log shrinks when attachments fill the tray: keep its end in view
    new ResizeObserver(() => { if (this.stick) logEl.scrollTop = logEl.scrollHeight; }).observe(logEl);
  }

  get busy() {
    return this.controller !== null;
  }

  stop() {
    if (this.controller) this.controller.abort();
  }

  reset() {
    this.stop();
    this.epoch += 1;
    this.history = [];
    this.previewUrls.forEach((u) => URL.revokeObjectURL(u));
    this.previewUrls = [];
    this.logEl.querySelectorAll(".msg").forEach((n) => n.remove());
  }

  append(...nodes) {
    this.logEl.append(...nodes);
    this.stick = true;
    this.logEl.scrollTop = this.logEl.scrollHeight;
  }

  /** Send one user turn and stream the answer; request = {model, system, fields, apiKey}. */
  async send(text, attachments, request) {
    const user = userMessage(text, attachments);
    const reply = assistantMessage();
    this.previewUrls.push(...attachments.map((a) => a.url));
    this.append(user.el, reply.el);
    const turn = new Turn(reply);
    const follow = new MutationObserver(() => { if (this.stick) this.logEl.scrollTop = this.logEl.scrollHeight; });
    follow.observe(reply.el, { childList: true, subtree: true, characterData: true });
    this.controller = new AbortController();
    this.onBusy(true);
    let userMsg = null;
    const epoch = this.epoch;
    const keep = (answer) => {
      if (epoch === this.epoch) this.history.push(userMsg, { role: "assistant", content: answer });
    };
    try {
      const parts = await Promise.all(attachments.map((a) => contentPart(a, { transcribe: request.videoSpeech })));
      if (text) parts.push({ type: "text", text });
      userMsg = { role: "user", content: attachments.length ? parts : text };
      const system = request.system ? [{ role: "system", content: request.system }] : [];
      const body = { ...request.fields, messages: [...system, ...this.history, userMsg] };
      if (request.model) body.model = request.model;
      await streamChat(body, { apiKey: request.apiKey, signal: this.controller.signal, handlers: turn.handlers });
      turn.finish();
      keep(turn.answer);
    } catch (err) {
      if (err.name === "AbortError") {
        turn.finish(true);
        // a partial answer stays in the conversation; a turn stopped before any answer does not
        if (turn.answer && userMsg) keep(turn.answer);
        else user.markFailed("Stopped before an answer; not kept in the conversation.");
      } else {
        turn.fail(err);
        user.markFailed("Not kept in the conversation.");
      }
    } finally {
      follow.disconnect();
      this.controller = null;
      this.onBusy(false);
    }
  }
}
