// The chat page: a sidebar of conversations, the current one's turns, and
// answers read from the SSE stream as they arrive (fetch + getReader, never
// response.text()), rendered as sanitized markdown at most once a frame.
import markdownit from "./vendor/markdown-it.js";
import DOMPurify from "./vendor/purify.js";

const app = document.querySelector("#app");
const api = app.dataset.api;
const list = document.querySelector("#conversations");
const turns = document.querySelector("#turns");
const empty = document.querySelector("#empty");
const form = document.querySelector("#composer");
const input = document.querySelector("#message");
const sendButton = document.querySelector("#send");
const stopButton = document.querySelector("#stop");
const picker = document.querySelector("#model");
const itemTemplate = document.querySelector("#conversation-item");

const clone = (id) => document.querySelector(id).content.firstElementChild.cloneNode(true);

// Raw HTML in model output stays text (html: false); the result is still
// sanitized, so nothing the model writes can run in this page.
const md = markdownit({ html: false, linkify: true });

let current = null; // the open conversation's id
let controller = null; // aborts the answer being streamed
let streaming = null; // that answer: its turn id arrives with the `start` event
let catalogue = { default: "", auto: false, models: [] }; // GET api/models

const AUTO = "auto"; // a message's model when the server routes it to a small or big model

// --- the API -------------------------------------------------------------------

function csrfToken() {
  return document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
}

async function call(method, url, body, extra = {}) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), ...extra.headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: extra.signal,
  });
  if (!response.ok) {
    const error = await response.json().catch(() => null);
    throw new Error(error?.error?.message ?? `The server answered ${response.status}.`);
  }
  return response;
}

const getJSON = async (url) => (await call("GET", url)).json();

// --- the sidebar -----------------------------------------------------------------

async function loadConversations() {
  const page = await getJSON(api);
  list.replaceChildren(...page.results.map(conversationItem));
}

function conversationItem(conversation) {
  const item = itemTemplate.content.firstElementChild.cloneNode(true);
  const link = item.querySelector(".open");
  link.textContent = conversation.title || "New conversation";
  link.href = `#${conversation.id}`;
  item.classList.toggle("current", conversation.id === current);
  item.querySelector(".rename").addEventListener("click", () => rename(conversation));
  item.querySelector(".delete").addEventListener("click", () => remove(conversation));
  return item;
}

async function rename(conversation) {
  const title = prompt("Rename the conversation", conversation.title);
  if (title === null) return;
  await call("PATCH", `${api}/${conversation.id}`, { title });
  await loadConversations();
}

async function remove(conversation) {
  if (!confirm(`Delete "${conversation.title || "this conversation"}"?`)) return;
  await call("DELETE", `${api}/${conversation.id}`);
  if (conversation.id === current) location.hash = "";
  await loadConversations();
}

// --- the model picker ---------------------------------------------------------------

async function loadModels() {
  catalogue = await getJSON(app.dataset.models);
  const options = catalogue.models.map((entry) => option(entry.name, entry.reasoning ? `${entry.name} · thinks` : entry.name));
  if (catalogue.auto) options.push(option(AUTO, "Auto (small or big)"));
  picker.replaceChildren(...options);
  picker.hidden = options.length < 2; // nothing to choose
}

function option(value, label) {
  const item = document.createElement("option");
  item.value = value;
  item.textContent = label;
  return item;
}

// A conversation's model, or the default for none (or for a name the
// catalogue no longer has: the server answers with the default then too).
function selectModel(name) {
  picker.value = name || catalogue.default;
  if (picker.selectedIndex === -1) picker.value = catalogue.default;
}

// The model a message names. A hidden picker names none ("": the server's
// default), so a page opened before the server's models changed still works.
const messageModel = () => (picker.hidden ? "" : picker.value);

// The model a conversation keeps, so a reload shows it. "auto" is a choice per
// message, never a conversation's default (the server refuses it there): the
// conversation then keeps the catalogue's default.
const conversationModel = () => (messageModel() === AUTO ? "" : messageModel());

async function modelChanged() {
  if (!current) return; // a new conversation takes it when it is created
  try {
    await call("PATCH", `${api}/${current}`, { model: conversationModel() });
    await loadConversations(); // a change is an update: it moves up
  } catch {
    // Each message names the picker's model anyway: only a reload would forget it.
  }
}

// How a meta line names the model: the catalogue's name asked, and for a
// routed answer the one the router chose.
const savedModelLabel = (turn) => (turn.route ? `auto → ${turn.route.model}` : turn.model_name ?? "");

// While streaming, the `start` event names the upstream's model id: the label
// is the name asked, and for "auto" (or an answer this page did not ask for)
// the catalogue's entry with that id.
function liveModelLabel(asked, upstreamId) {
  const name = catalogue.models.find((entry) => entry.model === upstreamId)?.name ?? upstreamId;
  if (asked === AUTO) return `auto → ${name}`;
  return asked || name;
}

// --- turns -----------------------------------------------------------------------

function addTurn(role) {
  const item = document.createElement("li");
  item.className = role;
  const body = document.createElement("div");
  body.className = "body";
  const meta = document.createElement("div");
  meta.className = "meta";
  item.append(body, meta);
  turns.append(item);
  empty.hidden = true;
  return item;
}

function showUser(text) {
  addTurn("user").querySelector(".body").textContent = text;
}

function renderMarkdown(body, text) {
  body.innerHTML = DOMPurify.sanitize(md.render(text));
  for (const pre of body.querySelectorAll("pre")) {
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy";
    copy.textContent = "Copy";
    pre.prepend(copy);
  }
}

function metrics(answer, model) {
  const parts = model ? [model] : [];
  if (answer.ttft_ms != null) parts.push(`first token ${answer.ttft_ms} ms`);
  const generating = (answer.duration_ms - answer.ttft_ms) / 1000;
  if (answer.tokens_out > 1 && generating > 0) parts.push(`${((answer.tokens_out - 1) / generating).toFixed(1)} tokens/s`);
  if (answer.tokens_out != null) parts.push(`${answer.tokens_out} tokens`);
  return parts.join(" · ");
}

const STOPPED = new Set(["cancelled", "client_disconnected"]);

// --- what a model outputs besides its answer -------------------------------------
// All of it is model text, so it goes in as textContent, never as HTML.

// Thinking time from the server's figures: first output to first answer text.
function serverThinkingSeconds(figures) {
  const { ttft_ms: first, ttft_answer_ms: answer } = figures;
  return first != null && answer != null ? (answer - first) / 1000 : null;
}

// The model's thinking, above its answer: open with a running clock while it
// streams (`live`), folded once anything else arrives. The clock starts at the
// first thought, as the server's figures do (serverThinkingSeconds).
class Thinking {
  constructor(item, text = "") {
    this.details = clone("#thinking");
    this.summary = this.details.querySelector("summary");
    this.words = document.createTextNode(text); // appendData: no re-render per piece
    this.details.querySelector(".reasoning").append(this.words);
    item.querySelector(".body").before(this.details);
    this.live = false;
  }

  // `timed`: false when this page joined after the thinking began, so a
  // clock of its own would be wrong; "Thinking…" then has no seconds.
  stream({ timed }) {
    this.live = true;
    this.startedAt = timed ? performance.now() : null;
    this.details.open = true;
    this.details.classList.add("live");
    this.tick();
    this.timer = setInterval(() => this.tick(), 1000);
  }

  seconds() {
    return this.startedAt === null ? null : (performance.now() - this.startedAt) / 1000;
  }

  tick() {
    const seconds = this.seconds();
    this.summary.textContent = seconds === null ? "Thinking…" : `Thinking… ${Math.floor(seconds)} s`;
  }

  append(text) {
    this.words.appendData(text);
  }

  label(seconds) {
    this.summary.textContent = seconds == null ? "Thought" : `Thought for ${seconds.toFixed(1)} s`;
  }

  // Once only: a reader who has opened it again keeps it open.
  fold() {
    if (!this.live) return;
    this.live = false;
    clearInterval(this.timer);
    this.details.open = false;
    this.details.classList.remove("live");
    this.label(this.seconds());
  }
}

function showToolCall(item, call) {
  const card = clone("#tool-call");
  card.querySelector(".name").textContent = call.name;
  card.querySelector(".arguments").textContent = prettyJSON(call.arguments);
  item.querySelector(".meta").before(card);
}

// The arguments are what the model wrote: shown as written when not JSON.
function prettyJSON(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function showRefusal(item, text = "") {
  const block = clone("#refusal");
  block.querySelector(".text").textContent = text;
  item.querySelector(".meta").before(block);
  return block.querySelector(".text");
}

function showSavedAnswer(turn) {
  const item = addTurn("assistant");
  if (turn.reasoning) new Thinking(item, turn.reasoning).label(serverThinkingSeconds(turn));
  renderMarkdown(item.querySelector(".body"), turn.content);
  for (const call of turn.tool_calls ?? []) showToolCall(item, call);
  if (turn.refusal) showRefusal(item, turn.refusal);
  const status = STOPPED.has(turn.finish_reason) ? "Stopped · " : turn.finish_reason === "length" ? "Cut at the length limit · " : "";
  item.querySelector(".meta").textContent = status + metrics(turn, savedModelLabel(turn));
  if (turn.status === "failed") item.classList.add("failed");
}

async function openConversation(id) {
  controller?.abort();
  current = id;
  turns.replaceChildren();
  empty.hidden = false;
  if (id) {
    const conversation = await getJSON(`${api}/${id}`);
    selectModel(conversation.model);
    for (const turn of conversation.turns) {
      if (turn.role === "user") showUser(turn.content);
      else showSavedAnswer(turn);
    }
    for (const answer of conversation.generating) follow(answer.turn_id);
  } else selectModel(null); // a new chat starts on the default
  for (const item of list.children) item.classList.toggle("current", item.querySelector(".open").hash === `#${id}`);
  input.focus();
}

// --- one streamed answer ---------------------------------------------------------

// A turn whose text is re-rendered at most once per animation frame, however
// fast the tokens come.
class Answer {
  // `asked`: the model this page asked for; null for one it only follows.
  constructor(asked = null) {
    this.item = addTurn("assistant");
    this.body = this.item.querySelector(".body");
    this.meta = this.item.querySelector(".meta");
    this.text = "";
    this.frame = 0;
    this.turnId = null;
    this.lastId = 0; // the id of the last event read: where a resume starts
    this.joinedLate = false; // read from its first event by a page that opened while it was written
    this.thinking = null;
    this.refusal = null; // the refusal's text, once one arrives
    this.asked = asked;
    this.model = ""; // named in the meta line, once `start` says which model answers
    this.item.classList.add("streaming");
  }

  started({ turn_id, model }) {
    this.turnId = turn_id;
    this.model = liveModelLabel(this.asked, model);
  }

  append(text) {
    this.thinking?.fold();
    this.text += text;
    this.frame ||= requestAnimationFrame(() => this.render());
  }

  think(text) {
    if (!this.thinking) {
      this.thinking = new Thinking(this.item);
      this.thinking.stream({ timed: !this.joinedLate });
    }
    this.thinking.append(text);
  }

  toolCall(call) {
    this.thinking?.fold();
    showToolCall(this.item, call);
  }

  refuse(text) {
    this.thinking?.fold();
    this.refusal ??= showRefusal(this.item);
    this.refusal.textContent += text;
  }

  // The server measured the thinking from its first output, where this page
  // may have joined late (a reload, a second tab): its figure is the one kept.
  finished(figures) {
    const seconds = serverThinkingSeconds(figures);
    if (this.thinking && seconds != null) this.thinking.label(seconds);
  }

  render() {
    this.frame = 0;
    renderMarkdown(this.body, this.text);
  }

  end(status, { failed = false, retry = null } = {}) {
    this.thinking?.fold();
    cancelAnimationFrame(this.frame);
    this.render();
    this.item.classList.remove("streaming");
    this.item.classList.toggle("failed", failed);
    this.meta.textContent = status;
    if (retry) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "retry";
      button.textContent = "Retry";
      button.addEventListener("click", () => { button.remove(); retry(); });
      this.meta.append(" ", button);
    }
  }
}

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

async function readAnswer(response, answer) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const state = { buffer: "" };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null; // the stream ended without a final event: it was cut
    state.buffer += decoder.decode(value, { stream: true }).replaceAll("\r\n", "\n");
    for (const event of takeEvents(state)) {
      if (event.id !== null) answer.lastId = event.id;
      if (event.type === "start") answer.started(event.data);
      else if (event.type === "delta") answer.append(event.data.text);
      else if (event.type === "reasoning") answer.think(event.data.text);
      else if (event.type === "tool_call") answer.toolCall(event.data);
      else if (event.type === "refusal") answer.refuse(event.data.text);
      else if (event.type === "done" || event.type === "error") return event;
    }
  }
}

// The stream broke (network change, sleep, proxy): a read error or an end
// without a final event. Null then; a Stop still throws AbortError.
async function readOrNull(response, answer) {
  try {
    return await readAnswer(response, answer);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return null;
  }
}

// An answer's events after event id `after` (0: from its start).
function answerEvents(turnId, after, signal) {
  return call("GET", app.dataset.events.replace("TURN", turnId), undefined, {
    signal,
    headers: { Accept: "text/event-stream", "Last-Event-ID": String(after) },
  });
}

// Ask for the rest after the last event id, backing off between tries; the
// server sends exactly what is missing, from the live answer or the saved one.
const RESUME_DELAYS_MS = [250, 500, 1000, 2000, 4000];

async function resume(answer) {
  for (const delay of RESUME_DELAYS_MS) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    answer.meta.textContent = "Reconnecting…";
    try {
      const response = await answerEvents(answer.turnId, answer.lastId, controller.signal);
      const final = await readOrNull(response, answer);
      if (final) return final;
    } catch (error) {
      if (error.name === "AbortError") throw error;
    }
  }
  return null;
}

async function send(content) {
  const model = messageModel();
  if (!current) {
    const created = await (await call("POST", api, { model: conversationModel() })).json();
    current = created.id;
    history.replaceState(null, "", `#${current}`);
  }
  showUser(content);
  const open = (signal) =>
    call("POST", `${api}/${current}/messages`, { content, model }, { signal, headers: { Accept: "text/event-stream" } });
  await streamInto(new Answer(model), open, () => send(content));
}

// An answer still being generated when the page opened (a reload, a second
// tab): follow it from its first event.
async function follow(turnId) {
  const answer = new Answer();
  answer.turnId = turnId;
  answer.joinedLate = true;
  await streamInto(answer, (signal) => answerEvents(turnId, 0, signal), null);
}

// Read one answer's stream into its turn, resuming after a break, until its
// final event; `retry` (if any) is offered when it fails.
async function streamInto(answer, open, retry) {
  streaming = answer;
  controller = new AbortController();
  setStreaming(true);
  try {
    const response = await open(controller.signal);
    let final = await readOrNull(response, answer);
    if (final === null && answer.turnId) final = await resume(answer);
    if (final === null) answer.end("The connection was cut before the answer ended.", { failed: true, retry });
    else if (final.type === "error") answer.end(`Error: ${final.data.message}`, { failed: true, retry });
    else {
      const figures = { ...final.data, tokens_out: final.data.usage.tokens_out };
      answer.end((STOPPED.has(final.data.finish_reason) ? "Stopped · " : "") + metrics(figures, answer.model));
      answer.finished(final.data);
    }
  } catch (error) {
    if (error.name === "AbortError") answer.end("Stopped");
    else answer.end(`Error: ${error.message}`, { failed: true, retry });
  } finally {
    controller = null;
    streaming = null;
    setStreaming(false);
    // A first message gives the conversation its title. The list is only
    // refreshed: if the network is gone again, it keeps what it shows.
    loadConversations().catch(() => {});
  }
}

function setStreaming(on) {
  stopButton.hidden = !on;
  sendButton.disabled = on;
}

// Stop asks the server to cancel the answer (it closes the model's request and
// the stream ends with `cancelled`); before the turn has an id, or if that
// fails, dropping the connection stops it too.
async function stop() {
  const answer = streaming;
  if (!answer) return;
  if (!answer.turnId) return controller?.abort();
  try {
    await call("POST", app.dataset.cancel.replace("TURN", answer.turnId));
  } catch {
    controller?.abort();
  }
}

// --- wiring ----------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = input.value.trim();
  if (!content || controller) return;
  input.value = "";
  send(content);
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") stop();
});
stopButton.addEventListener("click", stop);
picker.addEventListener("change", modelChanged);
document.querySelector("#new-chat").addEventListener("click", () => { location.hash = ""; });
turns.addEventListener("click", (event) => {
  const copy = event.target.closest(".copy");
  if (!copy) return;
  navigator.clipboard?.writeText(copy.parentElement.querySelector("code")?.textContent ?? "").catch(() => {});
  copy.textContent = "Copied";
});
window.addEventListener("hashchange", () => openConversation(location.hash.slice(1) || null));
window.addEventListener("pagehide", () => controller?.abort()); // leaving the page stops the answer

await Promise.all([loadModels(), loadConversations()]);
await openConversation(location.hash.slice(1) || null);
setStreaming(streaming !== null); // Send is off in the HTML until this module runs
app.dataset.ready = "true";
