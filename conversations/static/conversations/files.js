// How files show: a size in words, and a sent message's files above its
// text (images inline at a bounded size, each a link to the full image;
// documents as links with their name and size). Names go in as textContent.
import { fileContentUrl } from "./api.js";

const UNITS = ["KB", "MB", "GB", "TB"];

// "512 bytes", "12 KB", "1.2 MB", 1024 to a KB: as the server's limits are set
// (20 MB is 20 * 1024 * 1024) and as the admin and the exports write sizes
// (files/sizes.py).
export function formatSize(bytes) {
  if (bytes < 1024) return bytes === 1 ? "1 byte" : `${bytes} bytes`;
  let size = bytes / 1024;
  let unit = 0;
  while (size >= 1024 && unit < UNITS.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size < 10 ? size.toFixed(1).replace(/\.0$/, "") : Math.round(size)} ${UNITS[unit]}`;
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

// An image opens full size over the page (a click with a modifier key, or
// without this script, opens it in a new tab: the server serves images
// inline). Its width and height reserve its box before it loads, so a
// conversation does not jump as lazy images come in.
function image(file) {
  const link = document.createElement("a");
  link.href = fileContentUrl(file.id);
  link.target = "_blank";
  link.rel = "noopener";
  link.title = `${file.name} (open full size)`;
  link.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    showFullSize(file, fileContentUrl(file.id));
  });
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

// --- the full-size view ------------------------------------------------------------

const lightbox = document.querySelector("#lightbox");

function showFullSize(file, url) {
  const img = lightbox.querySelector("img");
  img.src = url;
  img.alt = file.name;
  lightbox.setAttribute("aria-label", file.name);
  lightbox.querySelector(".name").textContent = file.name;
  lightbox.querySelector(".open").href = url;
  lightbox.showModal();
  lightbox.querySelector(".close").focus();
}

lightbox.querySelector(".close").addEventListener("click", () => lightbox.close());
// A click on the backdrop (the dialog itself, outside its image and bar) closes it.
lightbox.addEventListener("click", (event) => event.target === lightbox && lightbox.close());
// Esc closes the dialog (the browser's own), and is not the page's Esc: Stop.
lightbox.addEventListener("keydown", (event) => event.key === "Escape" && event.stopPropagation());
