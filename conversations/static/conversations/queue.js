// Messages waiting for the answer in progress in their conversation. The page
// sends every message with `while_answering: "queue"`: while an answer streams
// there (this tab's, or another tab's or script's), the server queues it
// (202) and answers it when that answer ends. Until then it shows under the
// streaming answer as queued, with Cancel, and its answer's events are
// followed already (they wait, then stream in when its turn comes).
import { call } from "./api.js";
import { answerEvents } from "./stream.js";
import { Answer, showUser } from "./turns.js";

export const WHILE_ANSWERING = "queue";

// chat.js's: how an answer's stream is read into it, and how an action's failure is shown.
let page = { streamInto: null, act: null };

export function setUpQueue({ streamInto, act }) {
  page = { streamInto, act };
}

// The answer on screen -> its queued message's item, while the message waits.
const waiting = new Map();

// A message's response, as chat.js sent it: a stream (answered at once), or
// a 202 that queued it, whose answer's events (waiting, then streaming) are
// read instead.
export async function sentWhileAnswering(response, message, answer, signal) {
  if (response.status !== 202) return response;
  const queued = await response.json();
  wait(queued, message, answer);
  return answerEvents(queued.answer_turn_id, 0, signal);
}

// Queued messages the server lists (a reload, a second tab) that this page
// does not show yet (`read`: the answers it reads): shown and followed.
export function showQueued(queued, read) {
  for (const entry of queued) {
    if (read.has(entry.answer_turn_id)) continue;
    const message = showUser(entry.content);
    const answer = new Answer();
    answer.joinedLate = true;
    wait(entry, message, answer);
    page.streamInto(answer, (signal) => answerEvents(entry.answer_turn_id, 0, signal));
  }
}

// The turns in their order, each waiting message just before its answer (a
// refresh lays out the saved turns, then the answers being read).
export function withQueued(items) {
  const placed = new Set(items);
  return items.flatMap((item) => {
    const message = waiting.get(item);
    return message && !placed.has(message) ? [message, item] : [item];
  });
}

// The message waits: marked queued, with Cancel; its answer hidden until it starts.
function wait(queued, message, answer) {
  message.dataset.turn = queued.turn_id;
  message.classList.add("queued");
  const meta = message.querySelector(".meta");
  meta.textContent = "Queued · answered when the current answer ends ";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "cancel-queued";
  cancel.textContent = "Cancel";
  cancel.addEventListener("click", () => page.act(takeBack(queued, message, answer)));
  meta.append(cancel);
  answer.turnId = queued.answer_turn_id; // a resume after a break waits again
  answer.waiting = true; // Stop passes it by: there is nothing to stop yet
  answer.item.hidden = true;
  answer.onStart = () => started(message, answer);
  answer.onEnd = (code) => code === "message_cancelled" && takenBack(message, answer); // from another tab
  waiting.set(answer.item, message);
}

function started(message, answer) {
  waiting.delete(answer.item);
  message.classList.remove("queued");
  message.querySelector(".meta").textContent = "";
  answer.waiting = false;
  answer.item.hidden = false;
}

// Cancel: the server takes it out of the queue (a 409 once its answer has
// started: that answer then streams in, and the error says why), then the
// page stops waiting for it.
async function takeBack(queued, message, answer) {
  await call("DELETE", queuedUrl(queued.turn_id));
  answer.controller.abort();
  takenBack(message, answer);
}

function takenBack(message, answer) {
  waiting.delete(answer.item);
  message.remove();
  answer.item.remove();
}

// DELETE api/turns/<id>: beside the turn's cancel URL, which the template gives.
const queuedUrl = (turnId) =>
  document.querySelector("#app").dataset.cancel.replace("TURN", turnId).replace(/\/cancel$/, "");
