#!/usr/bin/env bash
# Vendor the chat page's front-end libraries from npm into static files, with
# their licences. The results are committed, so running the app needs no
# build step; run this only to change a version.
#
#   scripts/vendor-js.sh
set -euo pipefail

MARKDOWN_IT=15.0.3   # markdown rendering (raw HTML off: model output is text)
DOMPURIFY=3.4.18     # sanitizing the rendered HTML, the second line of defence

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/conversations/static/conversations/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "markdown-it@$MARKDOWN_IT" "dompurify@$DOMPURIFY"

mkdir -p "$out"
# ES modules, renamed .js so every static server sends a JavaScript type.
cp node_modules/markdown-it/dist/browser/markdown-it.esm.min.mjs "$out/markdown-it.js"
cp node_modules/markdown-it/LICENSE "$out/markdown-it.LICENSE"
cp node_modules/dompurify/dist/purify.es.mjs "$out/purify.js"
cp node_modules/dompurify/LICENSE "$out/dompurify.LICENSE"
sed -i '/sourceMappingURL/d' "$out/markdown-it.js" "$out/purify.js"  # the maps are not vendored
printf 'markdown-it %s\ndompurify %s\n' "$MARKDOWN_IT" "$DOMPURIFY" > "$out/VERSIONS"
echo "vendored into $out:"
ls -l "$out"
