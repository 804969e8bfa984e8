// The model picker beside Send (from GET api/models), and how answers name
// their model.
import { getJSON } from "./api.js";

const app = document.querySelector("#app");
const picker = document.querySelector("#model");

export const AUTO = "auto"; // a message's model when the server routes it to a small or big model

let catalogue = { default: "", auto: false, models: [] };

export async function loadModels() {
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
export function selectModel(name) {
  picker.value = name || catalogue.default;
  if (picker.selectedIndex === -1) picker.value = catalogue.default;
}

// The model a message names. A hidden picker names none ("": the server's
// default), so a page opened before the server's models changed still works.
export const messageModel = () => (picker.hidden ? "" : picker.value);

// The model a conversation keeps, so a reload shows it. "auto" is a choice per
// message, never a conversation's default (the server refuses it there): the
// conversation then keeps the catalogue's default.
export const conversationModel = () => (messageModel() === AUTO ? "" : messageModel());

// How a meta line names the model: the catalogue's name asked, and for a
// routed answer the one the router chose.
export const savedModelLabel = (turn) => (turn.route ? `auto → ${turn.route.model}` : turn.model_name ?? "");

// While streaming, the `start` event names the upstream's model id: the label
// is the name asked, and for "auto" (or an answer this page did not ask for)
// the catalogue's entry with that id.
export function liveModelLabel(asked, upstreamId) {
  const name = catalogue.models.find((entry) => entry.model === upstreamId)?.name ?? upstreamId;
  if (asked === AUTO) return `auto → ${name}`;
  return asked || name;
}

// The message's model when its catalogue entry says it cannot see images,
// else null. "auto" leaves it to the router, which sends images to a model
// that sees them; the server refuses an image a model cannot see anyway.
export function blindModel() {
  const name = messageModel() || catalogue.default;
  return catalogue.models.find((entry) => entry.name === name)?.vision === false ? name : null;
}
