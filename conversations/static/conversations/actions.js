// What a user can do with a saved turn: switch between its versions, edit a
// message, regenerate or continue an answer, rate it. Streams and branch
// changes are chat.js's (`handlers`); feedback is kept here.
import { call, turnUrl } from "./api.js";
import { STOPPED } from "./turns.js";

// An answer that was stopped or cut can be continued.
const CONTINUABLE = new Set([...STOPPED, "length", "error"]);

const clone = (id) => document.querySelector(id).content.firstElementChild.cloneNode(true);

// Set once by chat.js: switchTo(turnId), regenerate(turn, item),
// edit(turn, item, content), continueAnswer(turn, item), and act(promise),
// which shows a user action's failure on the page.
let handlers = null;
export const setHandlers = (given) => {
  handlers = given;
};

// The turn's action bar, replacing the one it had.
export function addActions(item, turn) {
  item.querySelector(":scope > .actions")?.remove();
  const bar = clone(turn.role === "user" ? "#user-actions" : "#answer-actions");
  if (turn.siblings?.length > 1) bar.prepend(versions(turn));
  if (turn.role === "user") {
    bar.querySelector(".edit").addEventListener("click", () => startEdit(item, turn));
  } else {
    bar.querySelector(".regenerate").addEventListener("click", () => handlers.regenerate(turn, item));
    const more = bar.querySelector(".continue");
    more.hidden = !CONTINUABLE.has(turn.finish_reason);
    more.addEventListener("click", () => handlers.continueAnswer(turn, item));
    feedback(item, bar, turn);
  }
  item.append(bar);
}

// ‹ 2 / 3 ›: this turn's place among its versions.
function versions(turn) {
  const switcher = clone("#versions");
  const index = turn.siblings.indexOf(turn.id);
  switcher.querySelector(".count").textContent = `${index + 1} / ${turn.siblings.length}`;
  const previous = switcher.querySelector(".previous");
  const next = switcher.querySelector(".next");
  previous.disabled = index <= 0;
  next.disabled = index >= turn.siblings.length - 1;
  previous.addEventListener("click", () => handlers.switchTo(turn.siblings[index - 1]));
  next.addEventListener("click", () => handlers.switchTo(turn.siblings[index + 1]));
  return switcher;
}

// The message becomes a text box; Save sends it as a new version.
function startEdit(item, turn) {
  if (item.querySelector(".edit-box")) return;
  const box = clone("#edit-box");
  const text = box.querySelector("textarea");
  const body = item.querySelector(".body");
  text.value = turn.content;
  body.hidden = true;
  body.after(box);
  const close = () => {
    box.remove();
    body.hidden = false;
  };
  box.querySelector(".cancel").addEventListener("click", close);
  box.addEventListener("submit", (event) => {
    event.preventDefault();
    const content = text.value.trim();
    if (!content) return;
    close();
    handlers.edit(turn, item, content);
  });
  text.focus();
}

// Good answer / Bad answer, pressed as saved; pressing the pressed one again
// takes the rating back. Bad answer asks what was wrong (optional).
function feedback(item, bar, turn) {
  let saved = turn.feedback ?? null;
  const buttons = bar.querySelectorAll(".rate");
  const show = () => {
    for (const button of buttons) button.setAttribute("aria-pressed", String(saved?.rating === button.dataset.rating));
  };
  const rate = async (rating) => {
    item.querySelector(".feedback-comment")?.remove();
    const url = turnUrl(turn.id, "feedback");
    if (saved?.rating === rating) {
      await call("DELETE", url);
      saved = null;
    } else {
      saved = await (await call("PUT", url, { rating })).json();
      if (rating === "down") askWhy(item, url, (feedback) => (saved = feedback));
    }
    show();
  };
  for (const button of buttons) button.addEventListener("click", () => handlers.act(rate(button.dataset.rating)));
  show();
}

// The optional comment on a bad answer; `keep` takes the saved feedback.
function askWhy(item, url, keep) {
  const form = clone("#feedback-comment");
  const text = form.querySelector("textarea");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const sent = async () => {
      keep(await (await call("PUT", url, { rating: "down", comment: text.value.trim() })).json());
      form.replaceChildren("Thanks for the feedback.");
    };
    handlers.act(sent());
  });
  item.append(form);
  text.focus();
}
