#!/usr/bin/env bash
# Starts head N (0, 1 or 2) of the example pool "mhd3" (2 GiB, 3 heads, all
# sharing the static window 256M@0). Start the backend first:
#   cxl-mhd serve --pool mhd3 --capacity 2G --heads 3
# then, in three terminals, head 0 first (it becomes the FM-LD owner):
#   qemu-configs/mhd3/run-head.sh 0 -kernel bzImage -initrd initrd.img -append console=ttyS0 -nographic
# QEMU comes from $QEMU, else from the project's setup (`make setup`). The
# argument files are written for QEMU 11.1 (-object monitor-qmp, one NUMA
# node); for QEMU 10.0 print them with `cxl-mhd qemu-args ... --qemu-version 10.0`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
head=${1:?usage: run-head.sh HEAD [extra QEMU arguments...]}
shift
mapfile -t args < "$here/head$head.args"
if [ -n "${QEMU:-}" ]; then
  exec "$QEMU" "${args[@]}" "$@"
fi
mapfile -t qemu < <(node "$here/../../dist/src/cli/main.js" qemu-bin)
exec "${qemu[@]}" "${args[@]}" "$@"
