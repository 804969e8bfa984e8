// Share links (docs/sharing.md): a read-only page of the open conversation as
// it is now, for anyone holding the link. The dialog makes one (with the
// reasoning if chosen, and the name to show, if any), lists the conversation's
// links with Copy and Revoke; a revoked link is 404 at once.
import { call, conversationUrl, getJSON } from "./api.js";

const button = document.querySelector("#share-toggle");
const dialog = document.querySelector("#share");
const form = dialog.querySelector("form");
const list = dialog.querySelector(".links");
const statusLine = dialog.querySelector(".status");

let conversationId = null;

export function setUpSharing({ act }) {
  button.addEventListener("click", () => act(open()));
  dialog.querySelector(".close").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(share());
  });
  // Esc closes the dialog; it does not reach the page's Esc, which stops answers.
  dialog.addEventListener("keydown", (event) => event.key === "Escape" && event.stopPropagation());
}

// The open conversation (null for a new chat: nothing to share yet).
export function showSharing(conversation) {
  const id = conversation?.id ?? null;
  if (id !== conversationId && dialog.open) dialog.close(); // another conversation opened
  conversationId = id;
  button.hidden = !conversationId;
}

async function open() {
  statusLine.textContent = "";
  dialog.showModal();
  await showLinks();
}

async function showLinks() {
  const conversation = await getJSON(conversationUrl(conversationId));
  list.replaceChildren(...conversation.shared_links.map(linkItem));
  list.hidden = conversation.shared_links.length === 0;
}

async function share() {
  const fields = form.elements;
  const body = { include_reasoning: fields.include_reasoning.checked, display_name: fields.display_name.value.trim() };
  const link = await (await call("POST", `${conversationUrl(conversationId)}/share`, body)).json();
  await showLinks();
  await copy(link.url, "The new link is copied.");
}

function linkItem(link) {
  const item = document.createElement("li");
  const url = Object.assign(document.createElement("input"), { type: "text", readOnly: true, value: link.url });
  url.setAttribute("aria-label", "Share link");
  url.addEventListener("focus", () => url.select());
  const when = new Date(link.created_at).toLocaleString();
  const about = Object.assign(document.createElement("span"), {
    className: "hint",
    textContent: `${when} · ${link.turns} messages${link.include_reasoning ? " · with reasoning" : ""}`,
  });
  const copyButton = Object.assign(document.createElement("button"), { type: "button", textContent: "Copy" });
  copyButton.addEventListener("click", () => copy(link.url, "Copied."));
  const revoke = Object.assign(document.createElement("button"), { type: "button", textContent: "Revoke" });
  revoke.addEventListener("click", async () => {
    await call("DELETE", `${conversationUrl(conversationId)}/share`, { token: link.token });
    statusLine.textContent = "Revoked: the link no longer opens.";
    await showLinks();
  });
  item.append(url, copyButton, revoke, about);
  return item;
}

async function copy(text, done) {
  try {
    await navigator.clipboard.writeText(text);
    statusLine.textContent = done;
  } catch {
    statusLine.textContent = "Select the link to copy it."; // no clipboard (an insecure origin)
  }
}
