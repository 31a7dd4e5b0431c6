#!/usr/bin/env bash
# What the web client and its browser tests need beyond pip: onnxruntime-web from the lockfile, and Debian's
# Chromium (a browser that Playwright or Puppeteer downloads at install time does not run on these machines).
#   bash clients/web/install.sh
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
if ! command -v chromium > /dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    if ! command -v apt-get > /dev/null || { [ -n "$sudo" ] && ! command -v sudo > /dev/null; }; then
        echo "clients/web/install.sh: install Chromium (Debian: apt-get install chromium) for the browser tests" >&2
        exit 1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium > /dev/null
fi
echo "web client: onnxruntime-web $(node -p 'require("./node_modules/onnxruntime-web/package.json").version'), $(chromium --version 2>/dev/null | head -1)"
