// An answer's tool calls as cards, live and saved: "running" with a clock
// until the call's tool_result, then "done" with its result or "failed" with
// its error; a call that needs the user's approval asks with Approve and Deny
// (POST api/turns/<turn>/approvals). Everything a model or a tool wrote goes
// in as textContent.
import { call, turnUrl } from "./api.js";

const clone = (id) => document.querySelector(id).content.firstElementChild.cloneNode(true);

// A result longer than this is folded under its summary.
const FOLD_CHARS = 300;
const FOLD_LINES = 6;

// Set once by chat.js: shows a failed decision the page's usual way.
let showError = (error) => console.error(error);
export const setErrorHandler = (given) => {
  showError = given;
};

// What the model wrote, pretty when it is JSON, as written when not.
export function prettyJSON(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

const duration = (ms) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

export class ToolCard {
  // `timed`: false when the page joined the answer late (a reload), so a
  // clock of its own would be wrong: "running" then has no seconds.
  constructor(toolCall, { timed = false } = {}) {
    this.id = toolCall.id;
    this.card = clone("#tool-card");
    this.card.setAttribute("aria-label", `Tool ${toolCall.name}`);
    this.card.querySelector(".name").textContent = toolCall.name;
    this.card.querySelector(".arguments").textContent = prettyJSON(toolCall.arguments);
    this.status = this.card.querySelector(".status");
    this.clock = this.card.querySelector(".clock");
    this.decision = this.card.querySelector(".decision");
    this.approval = this.card.querySelector(".approval");
    this.timed = timed;
    this.timer = 0;
    this.ended = false;
  }

  // In a streamed answer: running until its result comes.
  run() {
    this.setStatus("running", "running");
    if (!this.timed) return;
    const startedAt = performance.now();
    const tick = () => (this.clock.textContent = `${Math.floor((performance.now() - startedAt) / 1000)} s`);
    tick();
    this.timer = setInterval(tick, 1000);
  }

  setStatus(state, text) {
    this.card.dataset.state = state;
    this.status.textContent = text;
  }

  stopClock() {
    clearInterval(this.timer);
    this.clock.textContent = "";
  }

  // The call's tool_result: its output, or the error the model was told.
  finish(result) {
    this.ended = true;
    this.stopClock();
    this.approval.hidden = true;
    const failed = result.error != null;
    this.setStatus(failed ? "failed" : "done", `${failed ? "failed" : "done"} · ${duration(result.duration_ms ?? 0)}`);
    this.card.append(failed ? errorBlock(result.error) : outputBlock(result.output ?? ""));
  }

  // The answer ended with no result for it (stopped, or a model without the loop).
  notRun() {
    if (this.ended) return;
    this.ended = true;
    this.stopClock();
    this.approval.hidden = true;
    this.setStatus("not-run", "not run");
  }

  // A live approval_request: Approve or Deny, for the answer `turnId`.
  ask(turnId) {
    this.stopClock();
    this.setStatus("waiting", "waiting for approval");
    this.approval.hidden = false;
    const [approve, deny] = this.approval.querySelectorAll("button");
    const reason = this.approval.querySelector(".reason");
    approve.onclick = () => this.decide(turnId, { approved: true });
    deny.onclick = () => this.decide(turnId, { approved: false, reason: reason.value.trim() });
  }

  async decide(turnId, { approved, reason = "" }) {
    const controls = this.approval.querySelectorAll("button, input");
    for (const control of controls) control.disabled = true;
    const body = { tool_call_id: this.id, approved, ...(reason ? { reason } : {}) };
    try {
      await call("POST", turnUrl(turnId, "approvals"), body);
    } catch (error) {
      for (const control of controls) control.disabled = false;
      showError(error);
      return;
    }
    this.decided({ approved, reason });
    // Until its tool_result comes (which hides the buttons).
    if (!this.ended) this.setStatus(approved ? "running" : "denied", approved ? "running" : "denied");
  }

  // A decision, made here or saved with the turn (approved: null, none was made).
  decided({ approved, reason = "" }) {
    this.decision.textContent = approved == null ? "Not decided" : approved ? "Approved" : "Denied";
    if (approved === false && reason) this.decision.textContent += `: ${reason}`;
  }
}

function errorBlock(error) {
  const block = document.createElement("p");
  block.className = "error";
  block.textContent = error;
  return block;
}

// The output under "Result", pretty when it is JSON; folded when long.
function outputBlock(output) {
  const pre = document.createElement("pre");
  pre.textContent = prettyJSON(output);
  const lines = pre.textContent.split("\n").length;
  const folded = pre.textContent.length > FOLD_CHARS || lines > FOLD_LINES;
  const block = document.createElement(folded ? "details" : "div");
  block.className = "output";
  const title = document.createElement(folded ? "summary" : "span");
  title.className = "label";
  title.textContent = folded ? `Result (${lines} lines)` : "Result";
  block.append(title, pre);
  return block;
}

// --- a saved answer's output in the order it streamed ----------------------------
// As conversations/stream/output.py's saved_output rebuilds it: each run of
// output_runs is [kind, length]; a tool_call, tool_result or approval_request
// run takes the next of its list, a step is a step, and a run of text,
// reasoning or a refusal takes that many characters (code points, as Python
// counts them) of its kind. No runs: all of it is text.
const LISTS = { tool_call: "tool_calls", tool_result: "tool_results", approval_request: "approvals" };
const TEXTS = { delta: "content", reasoning: "reasoning", refusal: "refusal" };

export function savedOutput(turn) {
  const runs = turn.output_runs ?? [];
  if (!runs.length) {
    // All text; or a turn saved before its runs were kept: its calls after it.
    const calls = (turn.tool_calls ?? []).map((data) => ({ kind: "tool_call", data }));
    return [...(turn.content ? [{ kind: "delta", text: turn.content }] : []), ...calls];
  }
  const lists = Object.fromEntries(Object.entries(LISTS).map(([kind, field]) => [kind, [...(turn[field] ?? [])]]));
  const texts = Object.fromEntries(Object.entries(TEXTS).map(([kind, field]) => [kind, [...(turn[field] ?? "")]]));
  const taken = { delta: 0, reasoning: 0, refusal: 0 };
  const output = [];
  for (const [kind, length] of runs) {
    if (kind in lists) {
      const data = lists[kind].shift();
      if (data) output.push({ kind, data });
    } else if (kind === "step") output.push({ kind });
    else if (kind in texts && length) {
      output.push({ kind, text: texts[kind].slice(taken[kind], taken[kind] + length).join("") });
      taken[kind] += length;
    }
  }
  return output;
}
