// The turns on screen: a user's message, a saved answer, and an Answer being
// streamed. Everything a model outputs goes in as textContent or sanitized
// markdown, never as HTML of its own.
import { sentFiles } from "./files.js";
import { liveModelLabel, savedModelLabel } from "./models.js";
import { LiveMarkdown, renderMarkdown } from "./render.js";
import { ToolCard, savedOutput } from "./tools.js";

const turns = document.querySelector("#turns");
const empty = document.querySelector("#empty");

const clone = (id) => document.querySelector(id).content.firstElementChild.cloneNode(true);

export const STOPPED = new Set(["cancelled", "client_disconnected"]);

// The text each turn on screen shows, so a refresh keeps a turn whose text
// has not changed (a long answer is not rendered again, nor scrolled away).
export const shownText = new WeakMap();

// A new turn at the end, or in place of `replacing` (a new version of it).
export function addTurn(role, replacing = null) {
  const item = document.createElement("li");
  item.className = role;
  const body = document.createElement("div");
  body.className = "body";
  const meta = document.createElement("div");
  meta.className = "meta";
  item.append(body, meta);
  if (replacing) replacing.replaceWith(item);
  else turns.append(item);
  empty.hidden = true;
  return item;
}

// A user's message: its files (files.js) above its text.
export function showUser(text, replacing = null, files = []) {
  const item = addTurn("user", replacing);
  const body = item.querySelector(".body");
  body.textContent = text;
  const shown = sentFiles(files);
  if (shown) body.before(shown);
  shownText.set(item, text);
  return item;
}

export function metrics(answer, model) {
  const parts = model ? [model] : [];
  if (answer.ttft_ms != null) parts.push(`first token ${answer.ttft_ms} ms`);
  const generating = (answer.duration_ms - answer.ttft_ms) / 1000;
  if (answer.tokens_out > 1 && generating > 0) parts.push(`${((answer.tokens_out - 1) / generating).toFixed(1)} tokens/s`);
  if (answer.tokens_out != null) parts.push(`${answer.tokens_out} tokens`);
  return parts.join(" · ");
}

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

// An answer's text comes in parts around its tool cards, in the order it
// streamed: a part after a card is a `.body` of its own.
function addBody(item) {
  const body = document.createElement("div");
  body.className = "body";
  item.querySelector(".meta").before(body);
  return body;
}

function addCard(item, card) {
  item.querySelector(".meta").before(card.card);
  return card;
}

function showRefusal(item, text = "") {
  const block = clone("#refusal");
  block.querySelector(".text").textContent = text;
  item.querySelector(".meta").before(block);
  return block.querySelector(".text");
}

export function showSavedAnswer(turn, replacing = null) {
  const item = addTurn("assistant", replacing);
  if (turn.reasoning) new Thinking(item, turn.reasoning).label(serverThinkingSeconds(turn));
  showSavedOutput(item, turn);
  if (turn.refusal) showRefusal(item, turn.refusal);
  describeSavedAnswer(item, turn);
  shownText.set(item, turn.content);
  return item;
}

// A saved answer's text and tool cards in the order they streamed (tools.js
// savedOutput); a call with no result was never run (the answer stopped, or
// its model had no tools to run).
function showSavedOutput(item, turn) {
  let body = item.querySelector(".body");
  let text = "";
  const cards = new Map();
  const settle = () => {
    if (text) renderMarkdown(body ?? addBody(item), text);
    body = null;
    text = "";
  };
  for (const piece of savedOutput(turn)) {
    if (piece.kind === "delta") text += piece.text;
    else if (piece.kind === "tool_call") {
      settle();
      cards.set(piece.data.id, addCard(item, new ToolCard(piece.data)));
    } else if (piece.kind === "tool_result") cards.get(piece.data.id)?.finish(piece.data);
    else if (piece.kind === "approval_request") cards.get(piece.data.id)?.decided(piece.data);
  }
  settle();
  for (const card of cards.values()) card.notRun();
}

// How an answer ended, when it did not simply stop: said before its figures.
const ENDED = {
  length: "Cut at the length limit · ",
  approval_timeout: "No approval in time · ",
  budget_exceeded: "Stopped at the budget · ",
};

// The documents whose text the answer's prompt could not carry whole.
const cutFiles = (cuts = []) =>
  cuts.map((cut) => `Read ${Math.floor((100 * cut.chars_sent) / cut.chars)}% of ${cut.name} · `).join("");

// A saved answer's meta line and state (also for a streamed one, once saved).
export function describeSavedAnswer(item, turn) {
  const status = STOPPED.has(turn.finish_reason) ? "Stopped · " : (ENDED[turn.finish_reason] ?? "");
  const meta = item.querySelector(".meta");
  meta.textContent = status + cutFiles(turn.file_cuts) + metrics(turn, savedModelLabel(turn));
  addOutputBadge(meta, turn.output_valid);
  item.classList.toggle("failed", turn.status === "failed");
}

// With a response format, whether the answer's text was JSON of it
// (`output_valid`: true or false; null or absent without one).
function addOutputBadge(meta, valid) {
  if (valid == null) return;
  const badge = document.createElement("span");
  badge.className = `output-check ${valid ? "valid" : "invalid"}`;
  badge.textContent = valid ? "✓ valid JSON" : "✗ not valid JSON";
  badge.title = `The answer ${valid ? "is" : "is not"} JSON of the conversation's response format`;
  meta.append(" ", badge);
}

// One answer being streamed into its turn, with its own connection: each has
// its own AbortController and turn id, so two answers on one page (this tab's
// own and one followed from another tab) are stopped and tracked apart. The
// text is rendered at most once per animation frame, however fast tokens come.
export class Answer {
  // `asked`: the model this page asked for; null for one it only follows.
  // `own`: this tab asked for it (Send, Regenerate, Edit, Continue).
  constructor({ asked = null, own = false, replacing = null } = {}) {
    this.item = addTurn("assistant", replacing);
    this.body = this.item.querySelector(".body"); // the text part being written; null after a card
    this.meta = this.item.querySelector(".meta");
    this.markdown = new LiveMarkdown(this.body);
    this.controller = new AbortController();
    this.own = own;
    this.text = ""; // all of it, as the saved turn's content
    this.partText = ""; // the part being written
    this.cards = new Map(); // tool cards by call id
    this.frame = 0;
    this.turnId = null;
    this.lastId = 0; // the id of the last event read: where a resume starts
    this.joinedLate = false; // read from its first event by a page that opened while it was written
    this.thinking = null;
    this.refusal = null; // the refusal's text, once one arrives
    this.asked = asked;
    this.model = ""; // named in the meta line, once `start` says which model answers
    this.waiting = false; // queued behind the answer in progress (queue.js)
    this.onStart = null; // called at its `start` event (queue.js: the wait is over)
    this.onEnd = null; // called as it ends, with the error's code if any (queue.js: taken back meanwhile)
    this.item.classList.add("streaming");
  }

  started({ turn_id, model }) {
    this.turnId = turn_id;
    this.item.dataset.turn = turn_id;
    this.model = liveModelLabel(this.asked, model);
    this.onStart?.();
  }

  append(text) {
    this.thinking?.fold();
    if (!this.body) {
      this.body = addBody(this.item);
      this.markdown = new LiveMarkdown(this.body);
    }
    this.text += text;
    this.partText += text;
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
    this.settleText();
    const card = addCard(this.item, new ToolCard(call, { timed: !this.joinedLate }));
    this.cards.set(call.id, card);
    card.run();
  }

  toolResult(result) {
    this.cards.get(result.id)?.finish(result);
  }

  // The stream waits for the user's decision (tools.js posts it); the
  // call's tool_result follows it.
  approvalRequest(request) {
    this.cards.get(request.id)?.ask(this.turnId);
  }

  // The text so far is final; more text goes in a part below the card.
  settleText() {
    if (!this.body) return;
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.markdown.render(this.partText, { final: true });
    this.body.classList.add("settled");
    this.body = this.markdown = null;
    this.partText = "";
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
    addOutputBadge(this.meta, figures.output_valid);
  }

  render() {
    this.frame = 0;
    this.markdown?.render(this.partText);
  }

  // `code`: the error's, when it ended with one.
  end(status, { failed = false, retry = null, code = null } = {}) {
    this.onEnd?.(code);
    this.thinking?.fold();
    this.settleText();
    for (const card of this.cards.values()) card.notRun();
    shownText.set(this.item, this.text);
    this.item.classList.remove("streaming");
    this.item.classList.toggle("failed", failed);
    this.meta.textContent = status;
    if (retry) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "retry";
      button.textContent = "Retry";
      button.addEventListener("click", () => {
        button.remove();
        retry();
      });
      this.meta.append(" ", button);
    }
  }
}
