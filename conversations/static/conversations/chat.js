// A plain page that streams: post a message, read the SSE answer with
// fetch + getReader as it arrives, and Stop with an AbortController.
const api = document.querySelector("#chat").dataset.api;
const turns = document.querySelector("#turns");
const form = document.querySelector("#composer");
const input = document.querySelector("#message");
const stopButton = document.querySelector("#stop");
let conversationId = null;
let controller = null;

function csrfToken() {
  return document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
}

async function postJSON(url, body, signal) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
}

function addTurn(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.append(document.createTextNode(text));
  turns.append(li);
  return li;
}

// Split a growing buffer into SSE events; the last, unfinished one stays.
function* takeEvents(state) {
  let end;
  while ((end = state.buffer.indexOf("\n\n")) !== -1) {
    const block = state.buffer.slice(0, end);
    state.buffer = state.buffer.slice(end + 2);
    const event = { type: "message", data: [] };
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event.type = line.slice(7);
      else if (line.startsWith("data: ")) event.data.push(line.slice(6));
    }
    if (event.data.length) yield { type: event.type, data: JSON.parse(event.data.join("\n")) };
  }
}

async function streamAnswer(response, li) {
  const text = li.firstChild;
  const meta = document.createElement("span");
  meta.className = "meta";
  li.append(meta);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const state = { buffer: "" };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    state.buffer += value;
    for (const event of takeEvents(state)) {
      if (event.type === "delta") text.appendData(event.data.text);
      else if (event.type === "done") meta.textContent = `${event.data.finish_reason} · first token ${event.data.ttft_ms} ms · ${event.data.usage.tokens_out} tokens`;
      else if (event.type === "error") { li.classList.add("failed"); meta.textContent = `Error: ${event.data.message}`; }
    }
  }
}

async function send(content) {
  if (!conversationId) {
    const created = await postJSON(api, {});
    conversationId = (await created.json()).id;
  }
  addTurn("user", content);
  const li = addTurn("assistant", "");
  controller = new AbortController();
  stopButton.hidden = false;
  try {
    const response = await postJSON(`${api}/${conversationId}/messages`, { content }, controller.signal);
    if (!response.ok) throw new Error((await response.json()).error.message);
    await streamAnswer(response, li);
  } catch (error) {
    const meta = li.querySelector(".meta") ?? li.appendChild(document.createElement("span"));
    meta.className = "meta";
    meta.textContent = error.name === "AbortError" ? "Stopped." : `Error: ${error.message}`;
  } finally {
    stopButton.hidden = true;
    controller = null;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = input.value.trim();
  if (!content || controller) return;
  input.value = "";
  send(content);
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  if (event.key === "Escape") controller?.abort();
});
stopButton.addEventListener("click", () => controller?.abort());
