// Shown nodes made equal to freshly rendered ones by changing only what
// differs, so the browser styles and lays out again only that: a code block
// being written keeps its text node and grows by appendData, a paragraph
// keeps its earlier words. Nodes are compared as markup (isEqualNode), so the
// result serializes exactly as the fresh nodes would.

// Whether `old` can become `fresh` in place: both text, or elements with the
// same tag and attributes (their children may differ).
export function sameShell(old, fresh) {
  if (old.nodeType !== fresh.nodeType) return false;
  if (old.nodeType !== Node.ELEMENT_NODE) return true;
  return old.cloneNode(false).isEqualNode(fresh.cloneNode(false));
}

// `old` changed to equal `fresh` (sameShell), its first `skip` children kept
// as they are (the caller knows they are right; `fresh` lacks them).
export function morph(old, fresh, skip = 0) {
  if (old.nodeType !== Node.ELEMENT_NODE) return morphText(old, fresh.data);
  if (!skip && old.isEqualNode(fresh)) return;
  const olds = old.childNodes;
  const freshes = [...fresh.childNodes];
  let i = 0;
  while (i < freshes.length && skip + i < olds.length && sameShell(olds[skip + i], freshes[i])) {
    morph(olds[skip + i], freshes[i]);
    i++;
  }
  while (olds.length > skip + i) old.lastChild.remove();
  old.append(...freshes.slice(i));
}

// A text node's text changed at its end only: the common start stays.
function morphText(node, text) {
  const old = node.data;
  if (old === text) return;
  let same = 0;
  if (text.startsWith(old)) same = old.length;
  else if (old.startsWith(text)) same = text.length;
  else while (same < old.length && old[same] === text[same]) same++;
  if (same < old.length) node.deleteData(same, old.length - same);
  if (same < text.length) node.appendData(text.slice(same));
}
