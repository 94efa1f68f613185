#!/usr/bin/env python3
"""Which QEMU command lines for a head are accepted, and the exact errors of the rest.

Each case starts QEMU with `-qmp stdio`, sends qmp_capabilities + quit, and
reports "accepted" or QEMU's error line. Pool files live in /dev/shm and are
removed at the end.

usage: cmdline_checks.py
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp_lib import GiB, make_pool_file, qemu_command, qemu_version  # noqa: E402

POOL = "/dev/shm/cxl-mhd-helper-test.mem"
MISSING = "/dev/shm/cxl-mhd-helper-test-missing.mem"
SMALL = "/dev/shm/cxl-mhd-helper-test-small.mem"


def base(fmw_size="4G", extra_rp=1):
    a = ["-S", "-display", "none", "-nodefaults",
         "-machine", f"q35,cxl=on,accel=tcg,cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size={fmw_size}",
         "-cpu", "max,hypervisor=off", "-m", "256M",
         "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1"]
    for n in range(1 + extra_rp):
        a += ["-device", f"cxl-rp,port={n},bus=cxl.1,id=rp{n},chassis=0,slot={n}"]
    return a


def static(mem_path=POOL, offset="0", size="256M", extra=""):
    return ["-object", f"memory-backend-file,id=m0,mem-path={mem_path},offset={offset},size={size},share=on",
            "-device", f"cxl-type3,bus=rp0,volatile-memdev=m0,id=mem0{extra}"]


def dcd(dc_size="1G", regions=1, with_static=True):
    a = ["-object", f"memory-backend-file,id=dc,mem-path={POOL},offset=0,size={dc_size},share=on"]
    dev = f"cxl-type3,bus=rp0,id=mem0,volatile-dc-memdev=dc,num-dc-regions={regions}"
    if with_static:
        a += ["-object", f"memory-backend-file,id=m0,mem-path={POOL},offset=0,size=256M,share=on"]
        dev += ",volatile-memdev=m0"
    return a + ["-device", dev]


CASES = [
    ("reference: window 4G, static 256M", base() + static()),
    ("window 256M (== static size)", base("256M") + static()),
    ("window 300M (not a 256M multiple)", base("300M") + static()),
    ("window 1G with 32 spare root ports", base("1G", 32) + static()),
    ("window 1G with 31 spare root ports", base("1G", 31) + static()),
    ("static window 128M", base() + static(size="128M")),
    ("offset 4096 (page aligned, not 2M)", base() + static(offset="4096")),
    ("offset 1000 (not page aligned)", base() + static(offset="1000")),
    ("offset+size beyond a non-empty file", base() + static(offset="4G")),
    ("mem-path does not exist", base() + static(mem_path=MISSING, offset="256M")),
    ("non-empty file smaller than the backend", base() + static(mem_path=SMALL)),
    ("sn as hex", base() + static(extra=",sn=0x4d48440000000001")),
    ("DCD: static 256M + DC 1G, 1 region", base() + dcd()),
    ("DCD: DC only (no static), 1 region", base() + dcd(with_static=False)),
    ("DCD: DC 1G, 3 regions", base() + dcd(regions=3)),
    ("DCD: DC 1G, 8 regions", base() + dcd(regions=8)),
    ("DCD: DC 1G, 9 regions", base() + dcd(regions=9)),
    ("DCD: DC 2G, 8 regions", base() + dcd(dc_size="2G", regions=8)),
    ("DCD: DC 2304M, 9 regions", base() + dcd(dc_size="2304M", regions=9)),
    ("DCD: DC 100M, 1 region", base() + dcd(dc_size="100M")),
    ("DCD: DC 258M (2M multiple, not 256M), 1 region", base() + dcd(dc_size="258M")),
    ("virtio-serial-pci without bus= after pxb-cxl", base() + static() + ["-device", "virtio-serial-pci,id=v"]),
    ("chardev socket without reconnect-ms, nobody listening",
     base() + static() + ["-chardev", "socket,id=c,path=/tmp/cxl-mhd-no-such.sock", "-mon", "chardev=c,mode=control"]),
    ("chardev socket with reconnect-ms=1000, nobody listening",
     base() + static() + ["-chardev", "socket,id=c,path=/tmp/cxl-mhd-no-such.sock,reconnect-ms=1000", "-mon", "chardev=c,mode=control"]),
    ("chardev socket with reconnect= (old spelling)",
     base() + static() + ["-chardev", "socket,id=c,path=/tmp/cxl-mhd-no-such.sock,reconnect=1", "-mon", "chardev=c,mode=control"]),
]


def run(args):
    p = subprocess.run(qemu_command() + args + ["-qmp", "stdio"], capture_output=True, text=True,
                       input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', timeout=60)
    err = "\n".join(line for line in p.stderr.splitlines() if line.strip())
    if '"return"' in p.stdout and p.returncode == 0:
        return "accepted" + (f" (stderr: {err})" if err else "")
    return f"exit {p.returncode}: {err}"


def main():
    print(f"# {qemu_version()}")
    make_pool_file(POOL, 4 * GiB)  # sparse; large enough for every case
    with open(SMALL, "wb") as f:
        f.write(b"x" * 4096)
    try:
        for name, args in CASES:
            t0 = time.monotonic()
            print(f"- {name}: {run(args)} [{time.monotonic() - t0:.2f}s]", flush=True)
            if os.path.exists(MISSING):
                print(f"    (QEMU created {MISSING}, size {os.path.getsize(MISSING)})")
                os.unlink(MISSING)
    finally:
        for p in (POOL, SMALL, MISSING):
            if os.path.exists(p):
                os.unlink(p)


if __name__ == "__main__":
    main()
