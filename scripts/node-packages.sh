#!/usr/bin/env bash
# Node.js packages the tests run (tests/node: AsyncAPI's parser, socket.io-client for the
# gateway's Socket.IO tests), installed from the
# committed lock with `npm ci`; skipped when node_modules is newer than the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node-packages: node and npm are needed (Debian: apt-get install -y nodejs npm)" >&2
    exit 1
fi
for dir in tests/node; do
    marker="$dir/node_modules/.package-lock.json"
    if [ -f "$marker" ] && [ "$marker" -nt "$dir/package-lock.json" ]; then
        continue
    fi
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts)
done
