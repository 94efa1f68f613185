#!/usr/bin/env bash
# Interim demo: create a pool, show its status, remove it. The three-guest
# demo replaces this once guests boot (issue: Linux guests end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
cli=(node dist/src/cli/main.js)
state=$(mktemp -d)
pool="demo-$$"
cleanup() { "${cli[@]}" pool destroy --pool "$pool" --state-dir "$state" --force >/dev/null 2>&1 || true; rm -rf "$state"; }
trap cleanup EXIT
echo "[demo] creating pool $pool: 2G, 3 heads, 2M blocks"
"${cli[@]}" pool create --pool "$pool" --capacity 2G --heads 3 --state-dir "$state"
echo "[demo] status"
"${cli[@]}" status --pool "$pool" --state-dir "$state"
echo "[demo] fsck"
"${cli[@]}" fsck --pool "$pool" --state-dir "$state"
echo "[demo] removing the pool"
