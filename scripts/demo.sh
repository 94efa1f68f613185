#!/usr/bin/env bash
# `make demo`: setup has run (Makefile); boot three guests on one pool and
# run the demo scenario (examples/ci/three-heads.yaml) through the scenario
# runner, one line per step. Leaves nothing running. Extra arguments go to
# `cxl-mhd run` (--keep, --junit FILE, --tap).
set -euo pipefail
cd "$(dirname "$0")/.."
exec node dist/src/cli/main.js run examples/ci/three-heads.yaml "$@"
