// Files attached to the message being written: chosen through Attach files,
// dropped on the chat, or pasted. Each uploads as soon as it is chosen (so
// sending is instant) and shows as a chip above the message box: a thumbnail
// or its name and size, its upload's progress, the server's error if it was
// refused, and Remove. chat.js asks what is attached when it sends.
import { call, fileUrl, uploadFile } from "./api.js";
import { formatSize } from "./files.js";

const form = document.querySelector("#composer");
const chips = document.querySelector("#attachments");
const picker = document.querySelector("#file-input");
const attachButton = document.querySelector("#attach");
const dropZone = document.querySelector(".chat");
const message = document.querySelector("#message");
const chipTemplate = document.querySelector("#attachment-chip");
const limits = document.querySelector("#app").dataset;
const maxBytes = Number(limits.maxFileBytes);
const maxFiles = Number(limits.maxFiles);

const attachments = []; // in the order chosen
let changed = () => {};

// One file on its way to the server, then uploaded (`file`: its metadata)
// or refused (`error`).
class Attachment {
  constructor(blob) {
    this.blob = blob;
    this.file = null;
    this.error = null;
    this.controller = new AbortController();
    this.chip = chipTemplate.content.firstElementChild.cloneNode(true);
    this.thumbnail = blob.type.startsWith("image/") ? URL.createObjectURL(blob) : null;
    this.show();
  }

  show() {
    const { chip, blob } = this;
    chip.querySelector(".name").textContent = blob.name;
    chip.querySelector(".size").textContent = formatSize(blob.size);
    const thumb = chip.querySelector(".thumb");
    if (this.thumbnail) {
      thumb.src = this.thumbnail;
      thumb.hidden = false;
      chip.classList.add("image");
    } else chip.querySelector(".badge").textContent = extension(blob.name);
    chip.querySelector(".progress").setAttribute("aria-label", `Uploading ${blob.name}`);
    const remove = chip.querySelector(".remove");
    remove.setAttribute("aria-label", `Remove ${blob.name}`);
    remove.title = `Remove ${blob.name}`;
    remove.addEventListener("click", () => detach(this, { focus: true }));
  }

  // `place`: how many files the message carries with this one.
  async upload(place) {
    if (this.blob.size > maxBytes) {
      return this.failed(`${this.blob.name} is ${formatSize(this.blob.size)}: the largest file is ${formatSize(maxBytes)}.`);
    }
    if (place > maxFiles) return this.failed(`A message carries ${maxFiles} files at most.`);
    this.chip.dataset.state = "uploading";
    const progress = this.chip.querySelector(".progress");
    try {
      this.file = await uploadFile(this.blob, {
        onProgress: (fraction) => (progress.value = fraction),
        signal: this.controller.signal,
      });
      this.chip.dataset.state = "uploaded";
    } catch (error) {
      if (error.name === "AbortError") return; // removed meanwhile
      return this.failed(error.message);
    }
    changed();
  }

  failed(message) {
    this.error = message;
    this.chip.dataset.state = "failed";
    this.chip.querySelector(".error").textContent = message;
    changed();
  }

  // Its chip goes; `sent`: a message took the file, so it stays on the server.
  drop({ sent = false } = {}) {
    this.controller.abort();
    if (this.file && !sent) call("DELETE", fileUrl(this.file.id)).catch(() => {}); // else the server's TTL takes it
    if (this.thumbnail) URL.revokeObjectURL(this.thumbnail);
    this.chip.remove();
  }
}

// A document's chip shows its kind where an image's shows its thumbnail.
const extension = (name) => (/\.([a-z0-9]{1,4})$/i.exec(name)?.[1] ?? "file").toUpperCase();

function attach(blobs) {
  for (const blob of blobs) {
    const attachment = new Attachment(blob);
    const place = attachments.filter((each) => !each.error).length + 1;
    attachments.push(attachment);
    chips.append(attachment.chip);
    attachment.upload(place);
  }
  showChips();
}

function detach(attachment, { focus = false } = {}) {
  const index = attachments.indexOf(attachment);
  attachments.splice(index, 1);
  attachment.drop();
  showChips();
  // Focus stays in the chips while there are any, else goes back to Attach.
  if (!focus) return;
  const next = attachments[index] ?? attachments.at(-1);
  (next ? next.chip.querySelector(".remove") : attachButton).focus();
}

function showChips() {
  chips.hidden = attachments.length === 0;
  changed();
}

// --- what chat.js asks ------------------------------------------------------------

// Files still on their way: Send waits for them.
export const uploading = () => attachments.some((each) => !each.file && !each.error);

// The uploaded files' metadata, in the order chosen.
export const uploaded = () => attachments.filter((each) => each.file).map((each) => each.file);

// After sending: every chip goes, the uploaded files kept for the message.
export function clearAttachments() {
  for (const attachment of attachments.splice(0)) attachment.drop({ sent: true });
  showChips();
}

// --- how files come: Attach files, drop, paste ----------------------------------

// A pasted image is named by the clipboard ("image.png"); it gets a name of
// its own. Clipboard data with text in it is text to paste (an office suite
// copies a paragraph as text and as a picture of it).
function pastedFiles(data) {
  if (data.types.includes("text/plain")) return [];
  return [...data.files].map((file) => {
    if (!file.type.startsWith("image/")) return file;
    const suffix = file.type.split("/")[1].replace("jpeg", "jpg").replace(/\+.*/, "");
    return new File([file], `pasted-image.${suffix}`, { type: file.type, lastModified: file.lastModified });
  });
}

const carriesFiles = (event) => event.dataTransfer?.types.includes("Files");

// The chat highlights while files are dragged over it. Entering a child is a
// dragenter before the parent's dragleave, so entries are counted.
function listenForDrops() {
  let depth = 0;
  const highlight = (on) => dropZone.classList.toggle("dropping", on);
  dropZone.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // the chat is a drop target
    depth += 1;
    highlight(true);
  });
  dropZone.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) highlight(false);
  });
  dropZone.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // allows the drop
    event.dataTransfer.dropEffect = "copy";
  });
  dropZone.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // else the browser opens the file in place of the page
    depth = 0;
    highlight(false);
    attach([...event.dataTransfer.files]);
    message.focus();
  });
  // Files dropped beside the chat (on the sidebar) are not taken, and the
  // browser does not leave the page to open them either.
  window.addEventListener("dragover", (event) => {
    if (!carriesFiles(event) || dropZone.contains(event.target)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "none";
  });
  window.addEventListener("drop", (event) => carriesFiles(event) && event.preventDefault());
}

// `onChange()` is called whenever what is attached, or its state, changes.
export function setUpAttachments({ onChange }) {
  changed = onChange;
  attachButton.addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    attach([...picker.files]);
    picker.value = ""; // the same file chosen again is a change again
  });
  form.addEventListener("paste", (event) => {
    const files = pastedFiles(event.clipboardData);
    if (!files.length) return;
    event.preventDefault();
    attach(files);
  });
  listenForDrops();
}
