// The open conversation's instructions, in a panel beside the chat: its system
// prompt, the parameters its answers are made with (empty: the model's
// default), its response format, and the staff's prompt it started from. Save
// PATCHes them; for a new chat, Save creates the conversation with them (and
// with the prompt chosen). The server judges every value: its 400 shows next
// to the field it names (error.param), as does a schema that is not JSON.
import { api, call, conversationUrl, getJSON } from "./api.js";
import { conversationModel } from "./models.js";

const app = document.querySelector("#app");
const panel = document.querySelector("#instructions");
const toggle = document.querySelector("#instructions-toggle");
const fields = panel.elements;
const statusLine = panel.querySelector(".status");

const NUMBERS = ["temperature", "top_p", "max_tokens", "seed", "presence_penalty", "frequency_penalty"];
const NO_INSTRUCTIONS = { system_prompt: "", parameters: {}, response_format: null, prompt: null };

let conversationId = null; // null: a new chat, not created yet
let prompts = []; // the staff's prompts (GET api/prompts), read when a new chat's panel opens
let schemaExtras = {}; // a loaded json_schema's `strict` and `description`, kept on save
let created = () => {};

// `onCreated(id)`: a new chat's Save made the conversation; the page opens it.
export function setUpInstructions({ onCreated }) {
  created = onCreated;
  toggle.addEventListener("click", () => setOpen(panel.hidden));
  panel.querySelector(".close").addEventListener("click", () => setOpen(false));
  panel.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  fields.format.addEventListener("change", formatChanged);
  fields.prompt.addEventListener("change", promptChosen);
  panel.addEventListener("input", (event) => clearError(event.target.closest("[data-param]")));
  // Esc in the panel closes it; it does not reach the page's Esc, which stops answers.
  panel.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.stopPropagation();
    setOpen(false);
    toggle.focus();
  });
}

// The conversation the page opened (null: a new chat).
export function showInstructions(conversation) {
  conversationId = conversation?.id ?? null;
  clearErrors();
  statusLine.textContent = "";
  fill(conversation ?? NO_INSTRUCTIONS);
  showPrompt(conversation);
  if (!panel.hidden && !conversationId) loadPrompts();
}

function setOpen(open) {
  panel.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  if (!open) return;
  if (!conversationId) loadPrompts();
  panel.querySelector(".close").focus(); // inside the panel, without a phone's keyboard popping up
}

// --- the fields, from and to the API's shape -----------------------------------

function fill({ system_prompt, parameters, response_format }) {
  fields.system_prompt.value = system_prompt ?? "";
  fillParameters(parameters ?? {});
  fillFormat(response_format);
}

function fillParameters(parameters) {
  for (const name of NUMBERS) fields[name].value = parameters[name] ?? "";
  fields.reasoning_effort.value = parameters.reasoning_effort ?? "";
  const stop = parameters.stop ?? [];
  fields.stop.value = (typeof stop === "string" ? [stop] : stop).join("\n");
}

function fillFormat(format) {
  const { name = "answer", schema, ...extras } = format?.json_schema ?? {};
  schemaExtras = extras;
  fields.format.value = format?.type ?? "";
  fields.schema_name.value = name;
  fields.schema.value = schema ? JSON.stringify(schema, null, 2) : "";
  formatChanged();
}

function formatChanged() {
  panel.querySelector(".schema").hidden = fields.format.value !== "json_schema";
}

// The fields as the API takes them; what cannot be sent goes in `problems`
// (a field's name → what is wrong), and nothing is sent then.
function readInstructions(problems) {
  return {
    system_prompt: fields.system_prompt.value,
    parameters: readParameters(problems),
    response_format: readFormat(problems),
  };
}

function readParameters(problems) {
  const parameters = {};
  for (const name of NUMBERS) {
    if (fields[name].validity.badInput) problems.set(name, "This is not a number.");
    else if (fields[name].value !== "") parameters[name] = Number(fields[name].value);
  }
  if (fields.reasoning_effort.value) parameters.reasoning_effort = fields.reasoning_effort.value;
  const stops = fields.stop.value.split("\n").filter((line) => line !== "");
  if (stops.length) parameters.stop = stops;
  return parameters;
}

function readFormat(problems) {
  const type = fields.format.value;
  if (type !== "json_schema") return type ? { type } : null;
  let schema;
  try {
    schema = JSON.parse(fields.schema.value);
  } catch (error) {
    problems.set("schema", `The schema is not JSON: ${error.message}`);
    return null;
  }
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    problems.set("schema", "A JSON Schema is a JSON object, such as {\"type\": \"object\"}.");
    return null;
  }
  return { type, json_schema: { ...schemaExtras, name: fields.schema_name.value.trim(), schema } };
}

// --- saving ------------------------------------------------------------------------

async function save() {
  clearErrors();
  const problems = new Map();
  const instructions = readInstructions(problems);
  if (problems.size) return problems.forEach((message, param) => showError(param, message));
  const id = conversationId;
  const button = panel.querySelector("[type=submit]");
  button.disabled = true;
  statusLine.textContent = "Saving…";
  try {
    await (id ? patch(id, instructions) : create(instructions));
  } catch (error) {
    if (id !== conversationId) return; // another conversation was opened meanwhile
    statusLine.textContent = "";
    showError(error.param, error.message);
  } finally {
    button.disabled = false;
  }
}

async function patch(id, instructions) {
  const saved = await (await call("PATCH", conversationUrl(id), instructions)).json();
  if (id !== conversationId) return; // another conversation was opened meanwhile: its fields stay
  fill(saved); // as the server keeps them
  statusLine.textContent = "Saved: the next answer follows them.";
}

async function create(instructions) {
  const conversation = await (await call("POST", api, newConversation(instructions))).json();
  statusLine.textContent = "Saved.";
  created(conversation.id);
}

// A new conversation's body: from the prompt chosen, the fields over its
// instructions (an empty system prompt keeps the prompt's).
function newConversation(instructions) {
  const body = { model: conversationModel(), ...instructions };
  if (!fields.prompt.value) return body;
  body.prompt = fields.prompt.value;
  if (!body.system_prompt) delete body.system_prompt;
  if (!body.response_format) delete body.response_format;
  return body;
}

// --- errors next to their fields ---------------------------------------------------

// The element a parameter's error goes in: its field's, else the form's.
function errorPlace(param) {
  const field = param && panel.querySelector(`[data-param="${CSS.escape(param)}"]`);
  return field?.querySelector(":scope > .field-error") ?? panel.querySelector(".form-error");
}

function showError(param, message) {
  const place = errorPlace(param);
  place.textContent = message;
  const field = place.parentElement;
  const control = field.classList.contains("field") && field.querySelector("input, textarea, select");
  if (control) {
    control.setAttribute("aria-invalid", "true");
    control.focus();
  }
}

function clearError(field) {
  if (!field) return;
  const place = field.querySelector(":scope > .field-error");
  if (place) place.textContent = "";
  for (const control of field.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

function clearErrors() {
  for (const place of panel.querySelectorAll(".field-error")) place.textContent = "";
  for (const control of panel.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

// --- the staff's prompt ------------------------------------------------------------

// An open conversation names the prompt it started from; a new chat may
// choose one, when the staff keep any.
function showPrompt(conversation) {
  const shown = panel.querySelector(".prompt-shown");
  shown.textContent = conversation ? (conversation.prompt ?? "No prompt") : "";
  shown.hidden = !conversation;
  fields.prompt.hidden = Boolean(conversation) || prompts.length === 0;
  fields.prompt.value = "";
  panel.querySelector(".prompt-description").textContent = "";
  fields.system_prompt.placeholder = "Empty: the server's own system prompt";
}

async function loadPrompts() {
  try {
    prompts = (await getJSON(app.dataset.prompts)).prompts;
  } catch {
    prompts = []; // the choice is only offered; a new chat starts without one
  }
  if (conversationId) return;
  const none = fields.prompt.options[0];
  fields.prompt.replaceChildren(none, ...prompts.map((prompt) => new Option(prompt.name, prompt.name)));
  fields.prompt.hidden = prompts.length === 0;
  const shown = panel.querySelector(".prompt-shown");
  shown.textContent = "No prompt: none is kept by the staff.";
  shown.hidden = prompts.length > 0;
}

// A prompt chosen for a new chat: its parameters and format fill the fields;
// its system prompt is the one sent unless another is written.
function promptChosen() {
  const prompt = prompts.find((each) => each.name === fields.prompt.value);
  panel.querySelector(".prompt-description").textContent = prompt?.description ?? "";
  fields.system_prompt.placeholder = prompt
    ? `Empty: the prompt's own (${prompt.description || prompt.name})`
    : "Empty: the server's own system prompt";
  fillParameters(prompt?.parameters ?? {});
  fillFormat(prompt?.response_format ?? null);
}
