// Reading an answer's SSE stream (fetch + getReader, never response.text())
// into an Answer, and resuming it after a break from the last event id.
import { call, eventsUrl } from "./api.js";

// SSE events from a stream of decoded text, across chunk boundaries.
function* takeEvents(state) {
  let end;
  while ((end = state.buffer.indexOf("\n\n")) !== -1) {
    const block = state.buffer.slice(0, end);
    state.buffer = state.buffer.slice(end + 2);
    let type = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("id:")) id = Number(line.slice(3).trim());
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) yield { type, id, data: JSON.parse(data.join("\n")) };
  }
}

// The final event (`done` or `error`), or null when the stream ended without
// one: it was cut.
async function readAnswer(response, answer) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const state = { buffer: "" };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    state.buffer += decoder.decode(value, { stream: true }).replaceAll("\r\n", "\n");
    for (const event of takeEvents(state)) {
      if (event.id !== null) answer.lastId = event.id;
      if (event.type === "start") answer.started(event.data);
      else if (event.type === "delta") answer.append(event.data.text);
      else if (event.type === "reasoning") answer.think(event.data.text);
      else if (event.type === "tool_call") answer.toolCall(event.data);
      else if (event.type === "tool_result") answer.toolResult(event.data);
      else if (event.type === "approval_request") answer.approvalRequest(event.data);
      else if (event.type === "refusal") answer.refuse(event.data.text);
      else if (event.type === "done" || event.type === "error") return event;
    }
  }
}

// The stream broke (network change, sleep, proxy): a read error or an end
// without a final event. Null then; a Stop still throws AbortError.
export async function readOrNull(response, answer) {
  try {
    return await readAnswer(response, answer);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return null;
  }
}

// An answer's events after event id `after` (0: from its start). `?after=`,
// not Last-Event-ID: to that header the server answers 204 (an EventSource's
// "stop") when nothing is missing, where this page still wants the `done`.
export function answerEvents(turnId, after, signal) {
  const url = `${eventsUrl(turnId)}?after=${after}`;
  return call("GET", url, undefined, { signal, headers: { Accept: "text/event-stream" } });
}

// Ask for the rest after the last event id, backing off between tries; the
// server sends exactly what is missing, from the live answer or the saved one.
const RESUME_DELAYS_MS = [250, 500, 1000, 2000, 4000];

export async function resume(answer) {
  for (const delay of RESUME_DELAYS_MS) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    answer.meta.textContent = "Reconnecting…";
    try {
      const response = await answerEvents(answer.turnId, answer.lastId, answer.controller.signal);
      const final = await readOrNull(response, answer);
      if (final) return final;
    } catch (error) {
      if (error.name === "AbortError") throw error;
    }
  }
  return null;
}
