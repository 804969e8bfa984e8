// How files show: a size in words, and a sent message's files above its
// text (images inline at a bounded size, each a link to the full image;
// documents as links with their name and size). Names go in as textContent.
import { fileContentUrl } from "./api.js";

const UNITS = ["KB", "MB", "GB"];

export function formatSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  let size = bytes;
  let unit = -1;
  while (size >= 1000 && unit < UNITS.length - 1) {
    size /= 1000;
    unit += 1;
  }
  return `${size < 10 ? size.toFixed(1) : Math.round(size)} ${UNITS[unit]}`;
}

// The files of a user's turn, as a block placed before its text; none: null.
export function sentFiles(files) {
  if (!files?.length) return null;
  const block = document.createElement("div");
  block.className = "files";
  const images = files.filter((file) => file.kind === "image");
  const documents = files.filter((file) => file.kind !== "image");
  if (images.length) block.append(list("images", images.map(image)));
  if (documents.length) block.append(list("documents", documents.map(documentLink)));
  return block;
}

function list(className, items) {
  const element = document.createElement("ul");
  element.className = className;
  for (const each of items) {
    const item = document.createElement("li");
    item.append(each);
    element.append(item);
  }
  return element;
}

// An image opens full size in a new tab (the server serves images inline).
// Its width and height reserve its box before it loads, so a conversation
// does not jump as lazy images come in.
function image(file) {
  const link = document.createElement("a");
  link.href = fileContentUrl(file.id);
  link.target = "_blank";
  link.rel = "noopener";
  link.title = `${file.name} (open full size)`;
  const img = document.createElement("img");
  img.src = link.href;
  img.alt = file.name;
  img.loading = "lazy";
  img.decoding = "async";
  if (file.width && file.height) {
    img.width = file.width;
    img.height = file.height;
  }
  link.append(img);
  return link;
}

// A document downloads (the server serves it as an attachment).
function documentLink(file) {
  const link = document.createElement("a");
  link.href = fileContentUrl(file.id);
  link.download = file.name;
  link.className = `document ${file.kind}`;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = file.name;
  const size = document.createElement("span");
  size.className = "size";
  size.textContent = formatSize(file.size);
  link.append(name, " ", size);
  return link;
}
