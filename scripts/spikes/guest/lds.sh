#!/bin/sh
# Guest side of scripts/spikes/multi_ld.py: regions for the static memdev and
# for every hot-added LD as it arrives, found by the tag in its LSA.
PATH=/scenario/guest:$PATH
up() { cut -d' ' -f1 /proc/uptime; }
echo "SPIKE-TOPO root decoders:"; for d in /sys/bus/cxl/devices/decoder0.*; do echo "SPIKE-TOPO ${d##*/} targets=$(cat $d/target_list) size=$(cat $d/size)"; done
for p in /sys/bus/cxl/devices/root0/dport*; do echo "SPIKE-TOPO ${p##*/} -> $(readlink -f $p/physical_node)"; done
echo "SPIKE-TOPO cxl list -D -d root -m mem0:"; cxl list -D -d root -m mem0 | sed 's/^/SPIKE-TOPO /'
if [ -e /sys/bus/cxl/devices/mem0 ]; then
  dax=$(cxl-mhd-devdax mem0 2>&1 | sed 's/^/SPIKE-LOG /') ; echo "$dax"
  echo "SPIKE-STATIC $(cxl-mhd-devdax mem0 2>/dev/null)"
fi
seen=" mem0:$(cat /sys/bus/cxl/devices/mem0/serial 2>/dev/null) "
echo "SPIKE-WAITING uptime=$(up)"
want=${CXLMHD_LDS:-6}
got=0
while [ $got -lt "$want" ]; do
  for m in /sys/bus/cxl/devices/mem*; do
    n=${m##*/}
    [ -e "$m/driver" ] || continue
    # a name can come back after a hot-remove: key on name + serial
    key=$n:$(cat "$m/serial" 2>/dev/null)
    case $seen in *" $key "*) continue ;; esac
    t0=$(up)
    tag=$(cxl-mhd-devdax --list "$n" | awk -v m="$n" '$1==m {print $2}')
    [ -n "$tag" ] || { [ "$(cat $m/label_storage_size)" -gt 0 ] || { echo "SPIKE-NOLSA $n"; seen="$seen$key "; got=$((got+1)); }; continue; }
    t1=$(up)
    echo "SPIKE-LOG $n first seen at $t0 tag=$tag; cxl list -D -d root -m $n: $(cxl list -D -d root -m $n | tr -d ' \n')"
    dax=$(cxl-mhd-devdax --tag "$tag" 2>/tmp/err) || { echo "SPIKE-FAIL $n $(tr '\n' ' ' </tmp/err)"; seen="$seen$key "; got=$((got+1)); continue; }
    out=$(daxpoke write "$dax" 0 "spike11:$tag" 2>&1) || { echo "SPIKE-FAIL $n daxpoke write $dax: $out" | tr '\n' ' '; echo; seen="$seen$key "; got=$((got+1)); continue; }
    echo "SPIKE-DAX mem=$n tag=$tag dax=$dax seen=$t0 tagread=$t1 ready=$(up)"
    seen="$seen$key "; got=$((got+1))
  done
  sleep 0.1
done
echo "SPIKE-LOG memdevs now: $(ls /sys/bus/cxl/devices | grep -E '^(mem|region)' | tr '\n' ' ')"
for r in /sys/bus/cxl/devices/region*; do
  t=$(cat $r/target0 2>/dev/null); e=${t#decoder}; e=endpoint${e%%.*}
  echo "SPIKE-REGION ${r##*/} resource=$(cat $r/resource) size=$(cat $r/size) target0=$t live=$([ -e /sys/bus/cxl/devices/$e ] && echo yes || echo no) decoder=$(readlink -f $r/.. | sed 's#.*/##')"
  # a region whose endpoint is gone (its LD was hot-removed) still holds its
  # window space until destroyed: the helper's cleanup would do this
  if [ ! -e /sys/bus/cxl/devices/$e ] && [ "${CXLMHD_CLEANUP:-0}" = 1 ]; then
    out=$( { cxl disable-region ${r##*/}; cxl destroy-region -f ${r##*/}; } 2>&1 ); echo "SPIKE-CLEANUP cxl ${r##*/} rc=$? $(echo "$out" | tr '\n' ' ')"
    if [ -e "$r" ]; then
      # cxl-cli gives up on a region with no target; the root decoder's sysfs delete_region does not
      rd=$(readlink -f $r/.. | sed 's#.*/##')
      out=$(echo ${r##*/} 2>&1 >/sys/bus/cxl/devices/$rd/delete_region); echo "SPIKE-CLEANUP sysfs ${r##*/} rc=$? $out left=$([ -e $r ] && echo yes || echo no)"
    fi
  fi
done
echo "SPIKE-LOG regions after cleanup: $(ls /sys/bus/cxl/devices | grep -E '^region' | tr '\n' ' ')"
echo "SPIKE-REGIONS $(ls -d /sys/bus/cxl/devices/region* | wc -l)"
cxl list -R | tr -d ' \n' | sed 's/^/SPIKE-R /'; echo
dmesg | grep -iE 'cxl|label|lsa|nvdimm' | grep -viE 'pciehp|link up|button|card present' | tail -n 40 | sed 's/^/SPIKE-DMESG /'
# Release in any order: destroy the OLDEST hot-added LD's region and make it
# again while the newer ones stay (a head releasing its first allocation),
# then destroy all oldest first and make them all again. With several root
# ports per bridge the bridge's HDM decoders are committed in order, so this
# is where a layout's decoder accounting shows.
region_of_mem() { for r in /sys/bus/cxl/devices/region*; do t=$(cat $r/target0 2>/dev/null); t=${t#decoder}; [ "$(readlink -f /sys/bus/cxl/devices/endpoint${t%%.*}/uport 2>/dev/null)" = "$(readlink -f /sys/bus/cxl/devices/$1)" ] && echo ${r##*/}; done; }
destroy() { out=$( { cxl disable-region "$1" && cxl destroy-region "$1"; } 2>&1 ); rc=$?; echo "SPIKE-TEARDOWN destroy $1 rc=$rc $(echo "$out" | tr '\n' ' ')"; }
remake() { out=$(cxl-mhd-devdax "$1" 2>&1); rc=$?; echo "SPIKE-TEARDOWN remake $1 rc=$rc $(echo "$out" | tr '\n' ' ')"; }
if [ "${CXLMHD_TEARDOWN:-0}" = 1 ]; then
  destroy "$(region_of_mem mem1)"
  remake mem1
  for i in $(seq 1 "$want"); do destroy "$(region_of_mem mem$i)"; done
  for i in $(seq 1 "$want"); do remake mem$i; done
  echo "SPIKE-TEARDOWN regions now: $(ls -d /sys/bus/cxl/devices/region* 2>/dev/null | sed 's#.*/##' | tr '\n' ' ')"
  dmesg | grep -iE 'out of order|decoder|reset|region' | tail -n 20 | sed 's/^/SPIKE-DMESG /'
fi
