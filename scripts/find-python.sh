#!/usr/bin/env bash
# Print the path of a Python of the given version (e.g. 3.13): on PATH, or
# installed by pyenv but not selected (pyenv's shims then refuse to run it).
#
#   scripts/find-python.sh 3.13
set -euo pipefail
version="$1"
for candidate in "python$version" "$(pyenv root 2>/dev/null)"/versions/"$version".*/bin/"python$version" \
    "$HOME"/.pyenv/versions/"$version".*/bin/"python$version"; do
    if path="$(command -v "$candidate")" && "$path" -c '' 2>/dev/null; then
        echo "$path"
        exit 0
    fi
done
echo "Python $version was not found: install it (e.g. pyenv install $version) or set PYTHON=/path/to/python$version" >&2
exit 1
