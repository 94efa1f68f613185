#!/bin/sh
# The three-head scenario, run by /init in every guest (CXLMHD_HEAD says
# which head this is). Heads meet through marker files in /scenario (a
# writable 9p share of one host directory); each result is a file
# h<head>.<name> there, read by the host afterwards.
#   head 0 (FM-LD owner): region over the shared window, writes pattern 1,
#          then `cxl-mhd fm add` gives head 1 256 MiB at pool offset 1G
#          (where the host wrote pattern 2), later `cxl-mhd fm release`
#   head 1: reads pattern 1, sees mem1 appear, reads pattern 2 from it,
#           tears its region down, sees mem1 go after the release
#   head 2: reads pattern 1
#   heads 1 and 2: `cxl-mhd fm identify` must fail (no FM-LD port)
S=/scenario
h=${CXLMHD_HEAD:?cxlmhd.head= missing on the kernel command line}
P1=${CXLMHD_P1SEED:-1}
P2=${CXLMHD_P2SEED:-2}

step() { echo "CXLMHD-STEP head=$h $*"; }
put() { echo "$2" >"$S/h$h.$1"; }
waitfor() { # FILE [tenths of a second]
  n=0
  while [ ! -e "$S/$1" ]; do
    sleep 0.1
    n=$((n + 1))
    [ "$n" -lt "${2:-3000}" ] || { step "timed out waiting for $1"; put failed "timed out waiting for $1"; exit 1; }
  done
}

put serial "$(cat /sys/bus/cxl/devices/mem0/serial 2>/dev/null)"
put size "$(cat /sys/bus/cxl/devices/mem0/ram/size 2>/dev/null)"
put fmld "${CXLMHD_FMLD:-none}"
step "mem0 serial $(cat "$S/h$h.serial") size $(cat "$S/h$h.size") fmld ${CXLMHD_FMLD:-none}"

dax=$(cxl-mhd-devdax mem0) || { put failed "region on mem0"; exit 1; }
step "region over the shared window: $dax"

case $h in
0)
  daxpoke fill "$dax" 0 2M "$P1" >/dev/null && touch "$S/p1-written"
  step "wrote pattern 1 into the shared window"
  waitfor h1.p1-done
  waitfor h2.p1-done
  step "cxl-mhd fm add --host 1 --extent 1G:256M"
  cxl-mhd fm add --host 1 --extent 1G:256M >"$S/h0.add.out" 2>&1
  put add.rc $?
  touch "$S/added"
  waitfor h1.p2-done
  step "cxl-mhd fm release --host 1 --extent 1G:256M"
  cxl-mhd fm release --host 1 --extent 1G:256M >"$S/h0.release.out" 2>&1
  put release.rc $?
  touch "$S/released"
  waitfor h1.mem1-gone 1200
  ;;
*)
  waitfor p1-written
  if daxpoke check "$dax" 0 2M "$P1" >/dev/null; then put p1 ok; else put p1 mismatch; fi
  step "pattern 1 read back: $(cat "$S/h$h.p1")"
  cxl-mhd fm identify >"$S/h$h.fm.out" 2>&1
  put fm.rc $?
  touch "$S/h$h.p1-done"
  if [ "$h" = 1 ]; then
    waitfor added
    n=0
    while [ ! -e /sys/bus/cxl/devices/mem1 ] && [ "$n" -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
    if [ -e /sys/bus/cxl/devices/mem1 ]; then
      put mem1 appeared
      put mem1.size "$(cat /sys/bus/cxl/devices/mem1/ram/size)"
      dax1=$(cxl-mhd-devdax mem1) && if daxpoke check "$dax1" 0 2M "$P2" >/dev/null; then put p2 ok; else put p2 mismatch; fi
      step "mem1 appeared; pattern 2 read back: $(cat "$S/h1.p2" 2>/dev/null)"
      # Give the capacity back cleanly before the FM takes it away.
      cxl disable-region -f all >/dev/null 2>&1
      cxl destroy-region -f all >/dev/null 2>&1
    else
      put mem1 missing
    fi
    touch "$S/h1.p2-done"
    waitfor released
    n=0
    while [ -e /sys/bus/cxl/devices/mem1 ] && [ "$n" -lt 1000 ]; do sleep 0.1; n=$((n + 1)); done
    if [ -e /sys/bus/cxl/devices/mem1 ]; then put mem1.after still-there; else put mem1.after gone; fi
    step "after the release mem1 is $(cat "$S/h1.mem1.after")"
    touch "$S/h1.mem1-gone"
    # Stay up until the host has checked that the blocks are free again.
    waitfor host-checked 1200
  fi
  ;;
esac
put done yes
step done
