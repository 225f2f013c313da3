#!/usr/bin/env bash
# Install a pinned MathJax 3 into the book so that equations render offline.
#
# Sphinx loads MathJax from a CDN by default; readers without internet would see raw TeX.
# This script installs the npm package `mathjax` (exact version below) into a throw-away
# folder and copies its `es5/` build to book/_static/mathjax/, which `_config.yml` points
# `mathjax_path` at. book/_static/mathjax/ is generated and git-ignored.
#
# Usage: tools/fetch_mathjax.sh            (idempotent: does nothing if the pinned copy exists)
#        tools/fetch_mathjax.sh --force    (reinstall)
set -euo pipefail

MATHJAX_VERSION="3.2.2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROOT}/book/_static/mathjax"
STAMP="${DEST}/.version"

if [[ "${1:-}" != "--force" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${MATHJAX_VERSION}" \
      && -f "${DEST}/tex-chtml.js" ]]; then
    echo "MathJax ${MATHJAX_VERSION} already in ${DEST}"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found. Install Node.js/npm (e.g. 'apt-get install npm'), then rerun" \
         "tools/fetch_mathjax.sh; the book needs a local MathJax to render equations offline." >&2
    exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT

echo "Installing mathjax@${MATHJAX_VERSION} with npm ..."
npm install --prefix "${TMP}" --no-save --no-audit --no-fund --ignore-scripts \
    "mathjax@${MATHJAX_VERSION}" >/dev/null

SRC="${TMP}/node_modules/mathjax/es5"
if [[ ! -f "${SRC}/tex-chtml.js" ]]; then
    echo "error: ${SRC}/tex-chtml.js missing after npm install" >&2
    exit 1
fi

rm -rf "${DEST}"
mkdir -p "$(dirname "${DEST}")"
cp -R "${SRC}" "${DEST}"
cp "${TMP}/node_modules/mathjax/LICENSE" "${DEST}/LICENSE"
echo "${MATHJAX_VERSION}" > "${STAMP}"
echo "MathJax ${MATHJAX_VERSION} copied to ${DEST} ($(du -sh "${DEST}" | cut -f1))"
