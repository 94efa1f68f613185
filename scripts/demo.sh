#!/usr/bin/env bash
# `make demo`: setup has run (Makefile); boot three guests on one pool and
# narrate what happens. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node dist/src/cli/main.js demo "$@"
