// Messages as DOM: every model, user or file-name string goes in through textContent, never innerHTML.

import { thumbnail } from "./attachments.js";

// ``` fences become code blocks; an unclosed fence (still streaming) runs to the end
const FENCE = /```([^\n`]*)\n?([\s\S]*?)(?:```|$)/g;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Replace the children of `container` with `text`: paragraphs keep their newlines, fences become <pre>. */
export function renderText(container, text) {
  const nodes = [];
  let last = 0;
  for (const m of text.matchAll(FENCE)) {
    if (m.index > last) nodes.push(el("div", "text", text.slice(last, m.index).replace(/^\n|\n$/g, "")));
    const pre = el("pre", "code");
    if (m[1].trim()) pre.dataset.lang = m[1].trim();
    pre.append(el("code", null, m[2].replace(/\n$/, "")));
    nodes.push(pre);
    last = m.index + m[0].length;
  }
  if (last < text.length) nodes.push(el("div", "text", text.slice(last).replace(/^\n/, "")));
  container.replaceChildren(...nodes.filter((n) => n.tagName === "PRE" || n.textContent !== ""));
}

/** renderText, except that a JSON answer (structured output) shows in monospace, its text unchanged. */
export function renderAnswer(container, text) {
  if (/^\s*[[{]/.test(text) && !text.includes("```")) {
    const pre = el("pre", "code json");
    pre.append(el("code", null, text));
    container.replaceChildren(pre);
  } else {
    renderText(container, text);
  }
}

/** The user's turn: its text and the thumbnails of what it attached. */
export function userMessage(text, attachments) {
  const article = el("article", "msg user");
  article.setAttribute("aria-label", "You");
  const bubble = el("div", "bubble");
  if (attachments.length) {
    const list = el("ul", "thumbs");
    attachments.forEach((a) => list.append(thumbnail(a)));
    bubble.append(list);
  }
  const body = el("div", "body");
  renderText(body, text);
  bubble.append(body);
  article.append(bubble);
  return {
    el: article,
    markFailed(note) {
      article.classList.add("failed");
      bubble.append(el("p", "note", note));
    },
  };
}

/** The model's turn: a collapsible thought (made on its first text), the answer, a meta line. */
export function assistantMessage() {
  const article = el("article", "msg assistant");
  article.setAttribute("aria-label", "Model");
  article.setAttribute("aria-busy", "true");
  const bubble = el("div", "bubble");
  const answer = el("div", "body answer");
  const pending = el("span", "pending", "…");
  pending.setAttribute("aria-label", "waiting for the answer");
  answer.append(pending);
  const meta = el("div", "meta");
  bubble.append(answer, meta);
  article.append(bubble);
  let thought = null;

  function thoughtBlock() {
    if (!thought) {
      thought = el("details", "thought");
      thought.open = true;
      const summary = el("summary", null, "Thinking…");
      const body = el("div", "body thought-body");
      thought.append(summary, body);
      thought.summaryEl = summary;
      thought.bodyEl = body;
      bubble.insertBefore(thought, answer);
    }
    return thought;
  }

  return {
    el: article,
    setReasoning(text) {
      if (text) renderText(thoughtBlock().bodyEl, text);
    },
    setAnswer(text) {
      renderAnswer(answer, text);
    },
    // the thought folds away once the answer starts, and says how long it took
    closeThought(seconds) {
      if (thought && thought.open && thought.dataset.closed !== "1") {
        thought.dataset.closed = "1";
        thought.open = false;
        thought.summaryEl.textContent = seconds === null ? "Thought" : `Thought for ${seconds.toFixed(1)} s`;
      }
    },
    setMeta(parts) {
      meta.replaceChildren(...parts.map((p) => el("span", null, p)));
    },
    showError(message) {
      const box = el("div", "error");
      box.setAttribute("role", "alert");
      box.textContent = message;
      if (answer.querySelector(".pending")) answer.replaceChildren();
      bubble.insertBefore(box, meta);
      article.classList.add("has-error");
    },
    addCopy(getText) {
      const button = el("button", "ghost small copy", "Copy");
      button.type = "button";
      button.setAttribute("aria-label", "Copy the answer");
      button.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(getText());
          button.textContent = "Copied";
        } catch (_) {
          button.textContent = "Copy failed";
        }
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
      });
      meta.append(button);
    },
    done() {
      article.setAttribute("aria-busy", "false");
      const p = answer.querySelector(".pending");
      if (p) p.remove();
    },
  };
}
