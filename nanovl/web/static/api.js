// The server's OpenAI API as the page uses it: the model list and one streamed chat completion.

export class ApiError extends Error {
  constructor(message, status = 0, code = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;  // 0: no HTTP answer (network) or an error sent inside the stream
    this.code = code;
  }
}

function headers(apiKey, json = false) {
  const h = {};
  if (apiKey) h.Authorization = `Bearer ${apiKey}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

// an OpenAI-shaped error body gives the message; anything else keeps the status line
async function errorFrom(resp) {
  let message = `${resp.status} ${resp.statusText}`.trim();
  let code = null;
  try {
    const body = await resp.json();
    if (body && body.error && body.error.message) {
      message = body.error.message;
      code = body.error.code || null;
    }
  } catch (_) { /* not JSON: keep the status line */ }
  return new ApiError(message, resp.status, code);
}

async function send(url, init) {
  try {
    return await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`cannot reach the server (${err.message})`, 0, "network");
  }
}

export async function listModels(apiKey) {
  const resp = await send("/v1/models", { headers: headers(apiKey), cache: "no-store" });
  if (!resp.ok) throw await errorFrom(resp);
  return (await resp.json()).data || [];
}

// yields the parsed JSON of each `data:` event until [DONE]
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * POST /v1/chat/completions with stream: true and call the handlers as deltas arrive.
 * handlers: onReasoning(text), onContent(text), onFinish(reason), onUsage(usage).
 * Rejects with ApiError (HTTP or in-stream error, network) or an AbortError when `signal` fires.
 */
export async function streamChat(body, { apiKey, signal, handlers }) {
  const payload = { ...body, stream: true, stream_options: { include_usage: true } };
  const resp = await send("/v1/chat/completions", {
    method: "POST", headers: headers(apiKey, true), body: JSON.stringify(payload), signal,
  });
  if (!resp.ok) throw await errorFrom(resp);
  try {
    for await (const event of sseEvents(resp.body)) {
      if (event.error) throw new ApiError(event.error.message || "the server reported an error", 0, event.error.code);
      if (event.usage) handlers.onUsage(event.usage);
      // the page shows one answer: with n > 1 in the extra fields, the other choices' chunks are skipped
      const choice = (event.choices || []).find((c) => (c.index ?? 0) === 0);
      if (!choice) continue;
      const delta = choice.delta || {};
      if (delta.reasoning_content) handlers.onReasoning(delta.reasoning_content);
      if (delta.content) handlers.onContent(delta.content);
      if (choice.finish_reason) handlers.onFinish(choice.finish_reason);
    }
  } catch (err) {
    if (err instanceof ApiError || err.name === "AbortError") throw err;
    throw new ApiError(`the connection broke during the answer (${err.message})`, 0, "network");
  }
}
