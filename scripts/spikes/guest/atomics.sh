#!/bin/sh
# Guest side of scripts/spikes/atomics.py: a region over the shared static
# window, then one daxatomic run per round (rounds in cxlmhd.rounds=MODE:N,...).
PATH=/scenario/guest:/scenario/bin:$PATH
dax=$(cxl-mhd-devdax mem0) || { echo "SPIKE-FAIL no devdax"; exit 1; }
echo "SPIKE-DAXREADY $dax"
r=0
for spec in $(echo "${CXLMHD_ROUNDS:-xadd:100000}" | tr ',' ' '); do
  daxatomic "$dax" $((r * 4096)) "${spec%%:*}" "${spec#*:}" 2>&1 | sed "s/^/SPIKE-ATOMIC head=${CXLMHD_HEAD:-?} round=$r /"
  r=$((r + 1))
done
