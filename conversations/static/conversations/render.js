// Model text as sanitized markdown: a saved answer in one go, a streamed one a
// block at a time (LiveMarkdown), with the same result for the same text.
import markdownit from "./vendor/markdown-it.js";
import DOMPurify from "./vendor/purify.js";

// Raw HTML in model output stays text (html: false); the result is still
// sanitized, so nothing the model writes can run in this page.
const md = markdownit({ html: false, linkify: true });

// Sanitized nodes for some of a parse's tokens, code blocks given their bar.
function nodes(tokens, env) {
  const html = md.renderer.render(tokens, md.options, env);
  const fragment = DOMPurify.sanitize(html, { RETURN_DOM_FRAGMENT: true });
  for (const pre of fragment.querySelectorAll("pre")) addCodeBar(pre);
  return fragment;
}

// A code block sits under a small bar with its language and a Copy button, so
// the button never covers the code (on a phone the code fills the width).
function addCodeBar(pre) {
  const box = document.createElement("div");
  box.className = "code";
  const bar = document.createElement("div");
  bar.className = "code-bar";
  const language = document.createElement("span");
  language.textContent = pre.querySelector("code")?.className.match(/language-(\S+)/)?.[1] ?? "";
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  bar.append(language, copy);
  pre.replaceWith(box);
  box.append(bar, pre);
}

// Top-level nodes go into parts of PART_BLOCKS blocks, so a frame restyles
// and lays out the part that grows, not every block of a long answer (and a
// part off screen is skipped whole: content-visibility in chat.css). A whole
// render groups the same nodes the same way, so both give the same DOM.
const PART_BLOCKS = 40;

class Parts {
  constructor(body) {
    this.body = body;
    this.last = null; // the part that grows
    this.blocks = 0; // its elements
  }

  add(fragment) {
    for (const node of [...fragment.childNodes]) {
      const block = node.nodeType === Node.ELEMENT_NODE;
      if (!this.last || (block && this.blocks === PART_BLOCKS)) this.open();
      this.last.append(node);
      if (block) this.blocks++;
    }
  }

  open() {
    this.last = document.createElement("div");
    this.last.className = "part";
    this.blocks = 0;
    this.body.append(this.last);
  }
}

// The whole text at once: a saved answer, and what a streamed one must end as.
export function renderMarkdown(body, text) {
  const env = {};
  body.replaceChildren();
  new Parts(body).add(nodes(md.parse(text, env), env));
}

// Where each line of `text` starts, as markdown-it counts lines (\r\n, \r, \n).
function lineStarts(text) {
  const starts = [0];
  for (const match of text.matchAll(/\r\n?|\n/g)) starts.push(match.index + match[0].length);
  return starts;
}

// The last top-level block that follows a blank line, if any: {index, line}
// (its first token, its first line). Everything before it is settled: after a
// blank line no top-level block (paragraph, list, quote, table, closed fence)
// can be continued or reinterpreted by text that comes later, whereas without
// one it can ("para\n#" is a paragraph and a heading; "para\n#x", one paragraph).
// Concatenating the renders of the token runs split there equals the render
// of the whole, since markdown-it's renderer ends every top-level block alike.
function lastSettledBoundary(tokens, text) {
  const starts = lineStarts(text);
  for (let index = tokens.length - 1; index > 0; index--) {
    const token = tokens[index];
    if (token.level !== 0 || token.nesting === -1 || !token.map || token.map[0] === 0) continue;
    const line = token.map[0];
    const before = text.slice(starts[line - 1], starts[line]);
    if (/^[ \t]*(\r\n?|\n)?$/.test(before)) return { index, line, chars: starts[line] };
  }
  return null;
}

// A streamed answer's text rendered as it grows. Settled blocks are rendered
// once and kept; each call parses and renders only the text after them, so a
// frame's work follows the open block's size, not the answer's.
export class LiveMarkdown {
  constructor(body) {
    this.body = body;
    this.parts = new Parts(body); // the settled blocks
    this.settledChars = 0; // how much of the text they show
    this.env = {}; // markdown-it's per-document state (link references)
  }

  // `text`: the whole answer so far; `final`: no more will come, so all of it
  // settles.
  render(text, { final = false } = {}) {
    const tail = text.slice(this.settledChars);
    let tokens = md.parse(tail, this.env);
    const boundary = final ? null : lastSettledBoundary(tokens, tail);
    this.dropOpen();
    if (boundary) {
      this.parts.add(nodes(tokens.slice(0, boundary.index), this.env));
      this.settledChars += boundary.chars;
      tokens = tokens.slice(boundary.index);
    }
    const open = nodes(tokens, this.env);
    if (final) this.parts.add(open);
    else this.body.append(open);
    // A link reference defined late applies to blocks settled before it: the
    // one case where pieces differ from the whole, so the whole is rendered.
    if (final && Object.keys(this.env.references ?? {}).length) renderMarkdown(this.body, text);
  }

  // The open block's nodes from the previous frame: all after the parts.
  dropOpen() {
    while (this.body.lastChild && this.body.lastChild !== this.parts.last) this.body.lastChild.remove();
  }
}
