#!/bin/sh
# Guest side of scripts/spikes/shared_tag.py: find the shared allocation by
# its tag (whatever memN it became here), then write (head 0) or read (head 1).
PATH=/scenario/guest:$PATH
tag=$CXLMHD_TAG
echo "SPIKE-WAITING uptime=$(cut -d' ' -f1 /proc/uptime)"
dax=$(cxl-mhd-devdax --tag "$tag" --wait 300 2>/tmp/err) || { echo "SPIKE-FAIL $(tr '\n' ' ' </tmp/err)"; exit 1; }
echo "SPIKE-DAX head=$CXLMHD_HEAD tag=$tag dax=$dax log=$(tr '\n' ' ' </tmp/err)"
msg="shared:$tag:written-by-head0"
if [ "$CXLMHD_HEAD" = 0 ]; then
  daxpoke write "$dax" 4096 "$msg" >/dev/null && echo "SPIKE-WROTE $msg"
else
  n=0
  until got=$(daxpoke read "$dax" 4096 ${#msg} 2>/dev/null) && [ "$got" = "$msg" ]; do
    n=$((n + 1)); [ $n -le 1200 ] || { echo "SPIKE-FAIL never saw head 0's bytes (last: $got)"; break; }; sleep 0.1
  done
  [ "$got" = "$msg" ] && echo "SPIKE-READ $got"
fi
cxl-mhd-devdax --list | sed 's/^/SPIKE-LIST /'
