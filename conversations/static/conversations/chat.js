// The chat page: a sidebar of conversations (searchable; a drawer on phones),
// the open conversation's shown branch of turns, and the answers this tab
// streams, each on its own connection (stream.js, turns.js).
import { addActions, setHandlers } from "./actions.js";
import { api, call, conversationUrl, exportUrl, getJSON, openStream, turnUrl } from "./api.js";
import { clearAttachments, setUpAttachments, uploaded, uploading } from "./attachments.js";
import { setUpInstructions, showInstructions } from "./instructions.js";
import { blindModel, conversationModel, loadModels, messageModel, selectModel } from "./models.js";
import { WHILE_ANSWERING, sentWhileAnswering, setUpQueue, showQueued, withQueued } from "./queue.js";
import { readOrNull, answerEvents, resume } from "./stream.js";
import { setUpSharing, showSharing } from "./sharing.js";
import { setErrorHandler } from "./tools.js";
import { Answer, STOPPED, describeSavedAnswer, metrics, showSavedAnswer, showUser, shownText } from "./turns.js";

const app = document.querySelector("#app");
const list = document.querySelector("#conversations");
const search = document.querySelector("#search");
const turns = document.querySelector("#turns");
const empty = document.querySelector("#empty");
const title = document.querySelector("#title");
const notice = document.querySelector("#notice");
const form = document.querySelector("#composer");
const input = document.querySelector("#message");
const sendButton = document.querySelector("#send");
const stopButton = document.querySelector("#stop");
const picker = document.querySelector("#model");
const menuButton = document.querySelector("#menu");
const itemTemplate = document.querySelector("#conversation-item");

let current = null; // the open conversation's id
const streams = new Set(); // the Answers this tab is reading, its own and followed ones

// --- errors --------------------------------------------------------------------
// A user action that fails says so on the page; a background refresh that
// fails keeps what the page shows. Neither becomes an unhandled rejection.

let noticeTimer = 0;

function showError(error) {
  notice.textContent = error.message;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (notice.hidden = true), 10_000);
}

// The fragment names the open conversation: only an id is taken from it,
// since it goes into API paths ("#../../accounts/logout/?" would log out).
const CONVERSATION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const fragmentId = () => (CONVERSATION_ID.test(location.hash.slice(1)) ? location.hash.slice(1) : null);

const act = (promise) => promise.catch(showError);
const quietly = (promise) => promise.catch(() => {});

// --- the sidebar -----------------------------------------------------------------

let listed = 0; // answers to older list requests (a slower search) are dropped

async function loadConversations() {
  const asked = ++listed;
  const words = search.value.trim();
  const page = await getJSON(words ? `${api}?q=${encodeURIComponent(words)}` : api);
  if (asked !== listed) return;
  const items = page.results.map(conversationItem);
  if (!items.length && words) items.push(nothingFound());
  list.replaceChildren(...items);
}

function conversationItem(conversation) {
  const item = itemTemplate.content.firstElementChild.cloneNode(true);
  const link = item.querySelector(".open");
  link.textContent = conversation.title || "New conversation";
  link.href = `#${conversation.id}`;
  item.classList.toggle("current", conversation.id === current);
  item.querySelector(".rename").addEventListener("click", () => act(rename(conversation)));
  item.querySelector(".delete").addEventListener("click", () => act(remove(conversation)));
  return item;
}

function nothingFound() {
  const item = document.createElement("li");
  item.className = "none";
  item.textContent = "No conversation matches.";
  return item;
}

async function rename(conversation) {
  const given = prompt("Rename the conversation", conversation.title);
  if (given === null) return;
  await call("PATCH", conversationUrl(conversation.id), { title: given });
  if (conversation.id === current) title.textContent = given;
  await loadConversations();
}

async function remove(conversation) {
  if (!confirm(`Delete "${conversation.title || "this conversation"}"?`)) return;
  await call("DELETE", conversationUrl(conversation.id));
  if (conversation.id === current) location.hash = "";
  await loadConversations();
}

let searchTimer = 0;

// Typing searches once the typing pauses, not at every key.
function searchChanged() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => act(loadConversations()), 250);
}

// On a phone the list is a drawer over the chat, opened by Menu.
function setMenu(open) {
  app.classList.toggle("menu-open", open);
  menuButton.setAttribute("aria-expanded", String(open));
}

// --- the open conversation -------------------------------------------------------

async function modelChanged() {
  if (!current) return; // a new conversation takes it when it is created
  try {
    await call("PATCH", conversationUrl(current), { model: conversationModel() });
    await loadConversations(); // a change is an update: it moves up
  } catch {
    // Each message names the picker's model anyway: only a reload would forget it.
  }
}

function showHeader(conversation) {
  title.textContent = conversation ? conversation.title || "New conversation" : "";
  showSharing(conversation);
  for (const link of document.querySelectorAll("[data-export]")) {
    link.hidden = !conversation;
    if (conversation) link.href = exportUrl(conversation.id, link.dataset.export);
  }
}

async function openConversation(id) {
  for (const answer of streams) answer.controller.abort(); // leaving a conversation stops its answers
  streams.clear();
  setStreaming();
  current = id;
  setMenu(false);
  turns.replaceChildren();
  empty.hidden = false;
  showHeader(null);
  for (const item of list.children) item.classList.toggle("current", item.querySelector(".open")?.hash === `#${id}`);
  if (id) {
    const conversation = await getJSON(conversationUrl(id));
    if (current !== id) return; // another was opened meanwhile
    selectModel(conversation.model);
    showConversation(conversation);
    showInstructions(conversation);
  } else {
    selectModel(null); // a new chat starts on the default
    showInstructions(null);
  }
  input.focus();
}

// The shown branch, as the server has it. A turn already on screen with the
// same text is kept as it is (only its meta line and actions are renewed), and
// the answers this tab is still reading stay below; answers generating that
// this tab does not read yet are followed.
function showConversation(conversation) {
  showHeader(conversation);
  const onScreen = new Map([...turns.querySelectorAll(":scope > li[data-turn]")].map((item) => [item.dataset.turn, item]));
  const live = [...streams].map((answer) => answer.item);
  const items = conversation.turns.map((turn) => {
    const kept = onScreen.get(turn.id);
    const item = kept && !live.includes(kept) && shownText.get(kept) === turn.content ? kept : showTurn(turn);
    if (turn.role === "assistant") describeSavedAnswer(item, turn);
    item.dataset.turn = turn.id;
    addActions(item, turn);
    return item;
  });
  placeInOrder(withQueued([...items, ...live]));
  empty.hidden = turns.children.length > 0;
  const read = new Set([...streams].map((answer) => answer.turnId));
  for (const answer of conversation.generating ?? []) if (!read.has(answer.turn_id)) follow(answer.turn_id);
  showQueued(conversation.queued ?? [], read);
}

// The turns list becomes `items`, moving only what is out of place: taking a
// long answer out and putting it back would lay all of it out again.
function placeInOrder(items) {
  const keep = new Set(items);
  for (const item of [...turns.children]) if (!keep.has(item)) item.remove();
  items.forEach((item, index) => {
    if (turns.children[index] !== item) turns.insertBefore(item, turns.children[index] ?? null);
  });
}

const showTurn = (turn) => (turn.role === "user" ? showUser(turn.content, null, turn.files) : showSavedAnswer(turn));

// After an answer is saved: its id, versions and actions come from the server.
async function refresh() {
  const id = current;
  const conversation = await getJSON(conversationUrl(id));
  if (current === id) showConversation(conversation);
}

// ‹ › between versions: the server shows the branch through that turn.
async function switchTo(turnId) {
  const conversation = await (await call("PATCH", conversationUrl(current), { leaf: turnId })).json();
  showConversation(conversation);
}

// A new version replaces the turn on screen; the turns after it belonged to
// the branch it leaves.
function dropAfter(item) {
  while (item.nextElementSibling) item.nextElementSibling.remove();
}

// --- answers this tab asks for ---------------------------------------------------

const ownAnswer = () => [...streams].some((answer) => answer.own);

// `files`: the uploaded files' metadata (attachments.js), sent by id.
async function send(content, files = []) {
  const model = messageModel();
  if (!current) {
    const created = await (await call("POST", api, { model: conversationModel() })).json();
    current = created.id;
    history.replaceState(null, "", `#${current}`);
    showHeader(created);
  }
  const message = showUser(content, null, files);
  const answer = new Answer({ asked: model, own: true });
  const url = `${conversationUrl(current)}/messages`;
  const body = files.length ? { content, model, files: files.map((file) => file.id) } : { content, model };
  body.while_answering = WHILE_ANSWERING; // sent while an answer streams: queued behind it (queue.js)
  const open = async (signal) => sentWhileAnswering(await openStream(url, body, signal), message, answer, signal);
  await streamInto(answer, open, () => send(content, files));
}

async function regenerate(turn, item) {
  if (ownAnswer()) return;
  const model = messageModel();
  dropAfter(item);
  const answer = new Answer({ asked: model, own: true, replacing: item });
  const open = (signal) => openStream(turnUrl(turn.id, "regenerate"), { model }, signal);
  await streamInto(answer, open, () => regenerate(turn, answer.item));
}

async function edit(turn, item, content) {
  if (ownAnswer()) return;
  const model = messageModel();
  dropAfter(item);
  const message = showUser(content, item, turn.files); // the edit keeps the question's files
  const open = (signal) => openStream(turnUrl(turn.id, "edit"), { content, model }, signal);
  await streamInto(new Answer({ asked: model, own: true }), open, () => edit(turn, message, content));
}

// The stream starts with the stopped text, so the answer grows in place: it
// is shown at once and the first frame renders the same text again.
async function continueAnswer(turn, item) {
  if (ownAnswer()) return;
  dropAfter(item);
  const answer = new Answer({ asked: turn.model_name, own: true, replacing: item });
  answer.markdown.render(turn.content);
  const body = turn.model_name ? { model: turn.model_name } : {};
  const open = (signal) => openStream(turnUrl(turn.id, "continue"), body, signal);
  await streamInto(answer, open, () => continueAnswer(turn, answer.item));
}

// An answer still being generated when the page opened (a reload, a second
// tab): follow it from its first event.
async function follow(turnId) {
  const answer = new Answer();
  answer.turnId = turnId; // its `start` event comes first and names its model
  answer.item.dataset.turn = turnId;
  answer.joinedLate = true;
  await streamInto(answer, (signal) => answerEvents(turnId, 0, signal), null);
}

// Read one answer's stream into its turn, resuming after a break, until its
// final event; `retry` (if any) is offered when it fails. Once the answer is
// saved, the conversation is read again for its ids, versions and actions.
async function streamInto(answer, open, retry) {
  const conversation = current;
  streams.add(answer);
  setStreaming();
  let final = null;
  try {
    const response = await open(answer.controller.signal);
    final = await readOrNull(response, answer);
    if (final === null && answer.turnId) final = await resume(answer);
    if (final === null) answer.end("The connection was cut before the answer ended.", { failed: true, retry });
    else if (final.type === "error") answer.end(`Error: ${final.data.message}`, { failed: true, retry, code: final.data.code });
    else {
      const figures = { ...final.data, tokens_out: final.data.usage.tokens_out };
      answer.end((STOPPED.has(final.data.finish_reason) ? "Stopped · " : "") + metrics(figures, answer.model));
      answer.finished(final.data);
    }
  } catch (error) {
    if (error.name === "AbortError") answer.end("Stopped");
    else answer.end(`Error: ${error.message}`, { failed: true, retry });
  } finally {
    streams.delete(answer);
    setStreaming();
    // A first message gives the conversation its title. Both are only
    // refreshes: if the network is gone again, the page keeps what it shows.
    quietly(loadConversations());
    if (final?.type === "done" && conversation === current) quietly(refresh());
  }
}

// Send waits for uploads (a message sent while an answer streams is queued);
// Stop shows while any answer is read.
function setStreaming() {
  stopButton.hidden = streams.size === 0;
  sendButton.disabled = uploading();
  sendButton.title = uploading() ? "Waiting for the files to upload" : "";
}

// A message may be files alone: the text is required only without them.
function attachmentsChanged() {
  input.required = uploaded().length === 0;
  setStreaming();
}

// Stop stops this tab's own answer (the newest), else the one it follows.
// It asks the server to cancel the answer (the model's request is closed and
// the stream ends with `cancelled`); before the turn has an id, or if that
// fails, dropping the connection stops it too.
async function stop() {
  const reading = [...streams].filter((each) => !each.waiting); // a queued one has nothing to stop yet
  const answer = reading.findLast((each) => each.own) ?? reading.at(-1);
  if (!answer) return;
  if (!answer.turnId) return answer.controller.abort();
  try {
    await call("POST", turnUrl(answer.turnId, "cancel"));
  } catch {
    answer.controller.abort();
  }
}

// --- wiring ----------------------------------------------------------------------

setUpAttachments({ onChange: attachmentsChanged });
// A new chat's instructions saved: the conversation exists, so it is opened and listed.
setUpInstructions({
  onCreated: (id) => {
    location.hash = id;
    quietly(loadConversations());
  },
});
setUpSharing({ act });
setUpQueue({ streamInto: (answer, open) => act(streamInto(answer, open, null)), act });
setHandlers({
  switchTo: (turnId) => act(switchTo(turnId)),
  regenerate: (turn, item) => act(regenerate(turn, item)),
  edit: (turn, item, content) => act(edit(turn, item, content)),
  continueAnswer: (turn, item) => act(continueAnswer(turn, item)),
  act,
});
setErrorHandler(showError); // a tool call's Approve or Deny that failed

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = input.value.trim();
  const files = uploaded();
  if ((!content && !files.length) || uploading()) return;
  const blind = files.some((file) => file.kind === "image") && blindModel();
  if (blind) {
    showError(new Error(`${blind} cannot see images: choose another model, or remove the images.`));
    return;
  }
  input.value = "";
  clearAttachments();
  act(send(content, files));
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (app.classList.contains("menu-open")) setMenu(false);
  else stop();
});
stopButton.addEventListener("click", stop);
picker.addEventListener("change", modelChanged);
search.addEventListener("input", searchChanged);
menuButton.addEventListener("click", () => setMenu(!app.classList.contains("menu-open")));
document.querySelector("#backdrop").addEventListener("click", () => setMenu(false));
list.addEventListener("click", (event) => event.target.closest(".open") && setMenu(false));
document.querySelector("#new-chat").addEventListener("click", () => {
  setMenu(false);
  location.hash = "";
});
turns.addEventListener("click", (event) => {
  const copy = event.target.closest(".copy");
  if (!copy) return;
  navigator.clipboard?.writeText(copy.closest(".code").querySelector("code")?.textContent ?? "").catch(() => {});
  copy.textContent = "Copied";
});
window.addEventListener("hashchange", () => act(openConversation(fragmentId())));
window.addEventListener("pagehide", () => {
  for (const answer of streams) answer.controller.abort(); // leaving the page stops its answers
});

try {
  await Promise.all([loadModels(), loadConversations()]);
  await openConversation(fragmentId());
} catch (error) {
  showError(error);
}
setStreaming(); // Send is off in the HTML until this module runs
app.dataset.ready = "true";
