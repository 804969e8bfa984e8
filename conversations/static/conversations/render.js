// Model text as sanitized markdown: a saved answer in one go, a streamed one a
// block at a time (LiveMarkdown), with the same result for the same text.
import markdownit from "./vendor/markdown-it.js";
import DOMPurify from "./vendor/purify.js";
import { morph, sameShell } from "./morph.js";

// Raw HTML in model output stays text (html: false); the result is still
// sanitized, so nothing the model writes can run in this page.
const md = markdownit({ html: false, linkify: true });

// Sanitized nodes for some of a parse's tokens, code blocks given their bar.
function nodes(tokens, env) {
  const html = md.renderer.render(tokens, md.options, env);
  const fragment = DOMPurify.sanitize(html, { RETURN_DOM_FRAGMENT: true });
  for (const code of fragment.querySelectorAll("pre > code")) splitCode(code);
  for (const pre of fragment.querySelectorAll("pre")) addCodeBar(pre);
  return fragment;
}

// A long code block's lines go in blocks of CODE_LINES (a span each, shown as
// a block: chat.css), in a whole render as in a streamed one, so the browser
// lays out the block of lines that grows, not the whole code: a frame that
// added a line to one text node of 5,000 lines (200 KB) took 40 to 150 ms to
// lay out, in blocks about 1 ms. Copy takes the code's textContent, the same.
const CODE_LINES = 100;

function splitCode(code) {
  const pieces = linePieces(code.textContent);
  if (pieces.length > 1) code.replaceChildren(...pieces.map(lineBlock));
}

// `text` cut after every CODE_LINES-th line break.
function linePieces(text) {
  const pieces = [];
  let start = 0;
  let lines = 0;
  for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", end + 1)) {
    if (++lines < CODE_LINES) continue;
    pieces.push(text.slice(start, end + 1));
    start = end + 1;
    lines = 0;
  }
  if (start < text.length || !pieces.length) pieces.push(text.slice(start));
  return pieces;
}

function lineBlock(text) {
  const block = document.createElement("span");
  block.className = "lines";
  block.textContent = text;
  return block;
}

// `text` appended to a code element as splitCode() would have split the
// whole: to its last piece, then in new blocks of lines.
function appendCode(code, text) {
  const split = code.firstElementChild !== null;
  const last = split ? code.lastChild.firstChild : code.firstChild;
  const had = last?.data ?? "";
  const pieces = linePieces(had + text);
  if (pieces.length === 1) {
    if (last) last.appendData(text);
    else code.append(text);
  } else if (!split) code.replaceChildren(...pieces.map(lineBlock));
  else {
    last.appendData(pieces[0].slice(had.length));
    code.append(...pieces.slice(1).map(lineBlock));
  }
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

  add(nodes) {
    for (const node of [...nodes]) {
      const block = node.nodeType === Node.ELEMENT_NODE;
      if (!this.last || (block && this.blocks === PART_BLOCKS)) this.open();
      this.last.append(node);
      if (block) this.blocks++;
    }
  }

  // Takes back the last nodes added, as if they had never been.
  remove(nodes) {
    for (const node of nodes) node.remove();
    while (this.last && !this.last.hasChildNodes()) {
      this.last.remove();
      this.last = this.body.lastElementChild;
    }
    this.blocks = this.last?.childElementCount ?? 0;
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
  new Parts(body).add(nodes(md.parse(text, env), env).childNodes);
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

// After the last top-level fence, if it is closed and its closing line ended:
// {index, chars} as lastSettledBoundary gives them. Nothing after a closed
// fence can change it. (An unclosed fence's last line is never a closing one:
// markdown-it would have closed it there.)
function closedFence(tokens, text) {
  const index = tokens.findLastIndex((token) => token.type === "fence" && token.level === 0);
  const fence = tokens[index];
  if (!fence || fence.map[1] - 1 === fence.map[0]) return null;
  const starts = lineStarts(text);
  const close = text.slice(starts[fence.map[1] - 1], starts[fence.map[1]]);
  const closing = new RegExp(`^ {0,3}${fence.markup[0]}{${fence.markup.length},}[ \\t]*\\n$`);
  return starts[fence.map[1]] !== undefined && closing.test(close) ? { index: index + 1, chars: starts[fence.map[1]] } : null;
}

const later = (a, b) => ((a?.chars ?? -1) >= (b?.chars ?? -1) ? a : b);

// markdown-it's parse of `src`, its core rules in their order, with `cut`
// given the block tokens before their text is parsed inline. (The rule list is
// markdown-it's own, read from the vendored, pinned 15.0.)
function parseTail(src, env, cut) {
  const state = new md.core.State(src, md, env);
  for (const rule of md.core.ruler.__rules__) {
    if (!rule.enabled) continue;
    if (rule.name === "inline") cut(state.tokens, env);
    rule.fn(state);
  }
  return state.tokens;
}

// Top-level blocks' first tokens: the nth is the nth element a render shows
// (each top-level block renders as one element; a fence's <pre> becomes its
// box in place).
function topBlocks(tokens) {
  return tokens.filter((token) => token.level === 0 && token.nesting !== -1);
}

const elements = (nodes) => nodes.filter((node) => node.nodeType === Node.ELEMENT_NODE);

// An open paragraph's text is parsed inline only once it is this long past
// where it was last cut: each frame then parses at most this much of it.
const CUT_CHARS = 4096;

// The open paragraph, when long: its text up to a cut renders the same
// whatever is appended (settles(), below), so that part is parsed, sanitized
// and laid out once; each frame parses only the text after the last cut and
// updates the children after the ones it shows. A cut is looked for once
// the text past it is CUT_CHARS long; none is found past an unpaired opener
// (an unclosed "**", "`" or "["), and then the paragraph is parsed whole, as
// before, until it settles.
class OpenParagraph {
  constructor() {
    this.element = null; // the <p> shown, whose first `count` children show `prefix`
    this.count = 0;
    this.prefix = "";
    this.ordinal = -1; // this frame: its place among the top-level elements, or -1
    this.cut = null; // this frame: text newly cut off, {text, nodes}
    this.tried = 0; // how long its text past the cuts was when no cut was found
  }

  // Before the inline parse: the paragraph's text shortened to what follows
  // its cuts. `shown`: the open blocks' nodes from the previous frame.
  shorten(tokens, shown, env) {
    this.ordinal = -1;
    this.cut = null;
    const blocks = topBlocks(tokens);
    const at = this.element ? elements(shown).indexOf(this.element) : blocks.length - 1;
    const inline = blocks[at]?.type === "paragraph_open" ? tokens[tokens.indexOf(blocks[at]) + 1] : null;
    if (!inline?.content.startsWith(this.prefix)) return this.forget();
    const rest = inline.content.slice(this.prefix.length);
    if (at === blocks.length - 1 && rest.length >= this.tried + CUT_CHARS) {
      this.cut = cutOff(rest, env);
      this.tried = this.cut ? 0 : rest.length;
    }
    inline.content = rest.slice(this.cut?.text.length ?? 0);
    this.ordinal = at;
  }

  forget() {
    this.tried = 0;
    this.element = null;
    this.count = 0;
    this.prefix = "";
  }

  // After the render: the text cut off this frame goes first in the fresh
  // paragraph's children (update() morphs the shown ones after `count`).
  prepend(fresh) {
    if (this.ordinal >= 0 && this.cut) elements(fresh)[this.ordinal].prepend(...this.cut.nodes);
  }

  // How many of a shown element's children update() leaves alone.
  skip(element) {
    return element === this.element ? this.count : 0;
  }

  // The shown paragraph is about to go (a block before it changed): its cut
  // children go into the fresh one that replaces it.
  rescue(removed, fresh) {
    if (this.element && removed.includes(this.element)) {
      const children = [...this.element.childNodes].slice(0, this.count);
      elements(fresh)[this.ordinal].prepend(...children);
    }
  }

  // After the update: `shown`, the open blocks' nodes now.
  shown(shown) {
    if (this.ordinal < 0) return this.forget();
    this.element = elements(shown)[this.ordinal];
    if (this.cut) {
      this.count += this.cut.nodes.length;
      this.prefix += this.cut.text;
    }
  }
}

// The text of `rest` up to a cut that settles (see settles()), rendered:
// {text, nodes}, or null. Tried at its last word, then at its half.
function cutOff(rest, env) {
  for (const end of [rest.length - 1, rest.length >> 1]) {
    let space = rest.lastIndexOf(" ", end - 1);
    while (space > 0 && /\s/.test(rest[space + 1])) space = rest.lastIndexOf(" ", space - 1);
    const text = rest.slice(0, space + 1);
    if (space > 0 && settles(text, env)) {
      const html = md.renderer.render(md.parseInline(text, env), md.options, env);
      return { text, nodes: [...DOMPurify.sanitize(html, { RETURN_DOM_FRAGMENT: true }).childNodes] };
    }
  }
  return null;
}

// Whether `text` (the start of a paragraph's text, ending in a space before a
// non-space) renders the same whatever follows it. Inline markup only pairs a
// later character with an earlier one in three ways: an emphasis or
// strikethrough opener still unmatched (markdown-it's delimiters, after
// its balance_pairs), a backtick run with no closing run yet, a "[" that a
// later "](url)" makes a link. Both of the latter leave their character in
// a text token. Autolinks, entities, escapes and linkified URLs hold no space,
// so they end before the cut.
function settles(text, env) {
  const state = new md.inline.State(text, md, env, []);
  md.inline.tokenize(state);
  for (const rule of md.inline.ruler2.getRules("")) rule(state);
  if (state.delimiters.some((delimiter) => delimiter.open && delimiter.end < 0)) return false;
  return !state.tokens.some((token) => token.type.startsWith("text") && /[`[]/.test(token.content));
}

// An open fence (a code block whose closing line has not come yet) at the
// top level and the start of its line: its lines are its code's text as they
// are, so what is appended to the answer is appended to its code (its last
// block of lines), with no parse or sanitize: a frame costs what came, not the
// block (a model writing a 5,000-line file). Its closing line, once whole,
// settles it where it is: nothing after a closed fence changes it. A last
// line that could still become a closing one waits for its line break; a CR
// or NUL (which markdown-it rewrites) sends the frame the whole way again.
class OpenFence {
  constructor() {
    this.code = null; // the code's element, while the fence is followed
    this.shown = 0; // how much of the answer's text it shows
    this.closing = null; // a closing line, as a RegExp
    this.marker = null; // a line that starts as one could
  }

  // After a render: follow the fence if the open blocks end in one.
  follow(tokens, tail, text, shown) {
    this.code = null;
    const fence = tokens.at(-1);
    if (fence?.type !== "fence" || fence.level !== 0) return;
    const starts = lineStarts(tail);
    const opening = tail.slice(starts[fence.map[0]]);
    const code = starts[fence.map[0] + 1];
    if (!opening.startsWith(fence.markup) || code === undefined) return; // indented, or its info still coming
    const char = fence.markup[0] === "`" ? "`" : "~";
    this.closing = new RegExp(`^ {0,3}${char}{${fence.markup.length},}[ \\t]*$`, "m");
    this.marker = new RegExp(`^ {0,3}${char}`);
    if (this.closing.test(tail.slice(code)) || this.marker.test(lastLine(text))) return;
    this.code = elements(shown).at(-1).querySelector("code");
    this.shown = codeEnd(text);
  }

  // `text` shown by appending to the code, if it can be: true when it was
  // (no parse needed), the length of the text up to the closing line's end
  // when the fence closed (the rest is to be rendered), false when not.
  append(text) {
    if (!this.code) return false;
    const line = text.lastIndexOf("\n", this.shown - 1) + 1;
    const segment = text.slice(line);
    const closing = this.closing.exec(segment);
    const closed = closing && segment[closing.index + closing[0].length] === "\n";
    if (/[\r\0]/.test(segment) || (!closed && this.marker.test(lastLine(text)))) {
      this.code = null;
      return false;
    }
    const end = closed ? line + closing.index : codeEnd(text);
    appendCode(this.code, text.slice(this.shown, end));
    this.shown = end;
    if (!closed) return true;
    this.code = null;
    return end + closing[0].length + 1;
  }
}

const lastLine = (text) => text.slice(text.lastIndexOf("\n") + 1);

// Where an open fence's code ends in `text`: markdown-it leaves out a last
// line that is only spaces and tabs so far.
function codeEnd(text) {
  const last = lastLine(text);
  return /^[ \t]*$/.test(last) ? text.length - last.length : text.length;
}

// A streamed answer's text rendered as it grows. Settled blocks are rendered
// once and kept; each call parses and renders only the text after them, so a
// frame's work follows the open block's size, not the answer's. The open
// blocks' nodes are updated in place (morph.js), not replaced, so the browser
// lays out again only what changed: a 5,000-line code block being written
// grows by its last lines, not by 5,000 new ones a frame. And a long open
// paragraph is parsed only from where its text can no longer change
// (OpenParagraph), so a 100 KB one costs a frame what its last few KB do.
export class LiveMarkdown {
  constructor(body) {
    this.body = body;
    this.parts = new Parts(body); // the settled blocks, then the open ones
    this.settledChars = 0; // how much of the text the settled blocks show
    this.env = {}; // markdown-it's per-document state (link references)
    this.open = []; // the open blocks' top-level nodes, as shown
    this.paragraph = new OpenParagraph();
    this.fence = new OpenFence();
  }

  // `text`: the whole answer so far; `final`: no more will come, so all of it
  // settles.
  render(text, { final = false } = {}) {
    const fence = this.fence.append(text);
    if (fence === true && !final) return;
    if (typeof fence === "number") this.settleAll(fence);
    const tail = text.slice(this.settledChars);
    const tokens = parseTail(tail, this.env, (blocks, env) => this.paragraph.shorten(blocks, this.open, env));
    const boundary = final ? null : later(lastSettledBoundary(tokens, tail), closedFence(tokens, tail));
    const settled = boundary ? [...nodes(tokens.slice(0, boundary.index), this.env).childNodes] : [];
    const fresh = settled.concat([...nodes(boundary ? tokens.slice(boundary.index) : tokens, this.env).childNodes]);
    this.paragraph.prepend(fresh);
    const shown = this.update(fresh);
    this.paragraph.shown(shown);
    this.open = final ? [] : shown.slice(settled.length);
    if (boundary) this.settledChars += boundary.chars;
    if (!final) this.fence.follow(boundary ? tokens.slice(boundary.index) : tokens, tail, text, this.open);
    // A link reference defined late applies to blocks settled before it: the
    // one case where pieces differ from the whole, so the whole is rendered.
    if (final && Object.keys(this.env.references ?? {}).length) renderMarkdown(this.body, text);
  }

  // All that is shown settled, as the first `chars` of the text.
  settleAll(chars) {
    this.settledChars = chars;
    this.open = [];
    this.paragraph.forget();
  }

  // The open blocks as shown made equal to `fresh`, node by node where the
  // two agree: what is kept or changed in place, then what is added.
  update(fresh) {
    const old = this.open;
    const kept = [];
    while (kept.length < Math.min(old.length, fresh.length)) {
      const i = kept.length;
      if (!sameShell(old[i], fresh[i])) break;
      morph(old[i], fresh[i], this.paragraph.skip(old[i]));
      kept.push(old[i]);
    }
    this.paragraph.rescue(old.slice(kept.length), fresh);
    this.parts.remove(old.slice(kept.length));
    const added = fresh.slice(kept.length);
    this.parts.add(added);
    return kept.concat(added);
  }
}
