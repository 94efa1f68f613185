#!/usr/bin/env python3
"""Spike (issue 11): cross-head atomics on a shared window under TCG.

Boots --guests stock guests (the project's initramfs), each with one
cxl-type3 whose volatile memory is the SAME 256 MiB of a /dev/shm pool
(share=on), as cxl-mhd heads sharing a static window. Each guest makes a
devdax region over it (cxl-mhd-devdax) and runs daxatomic (static C,
compiled here like build-guest.sh compiles daxpoke) once per round on one
counter; the host starts every round at once through the go flag in the
pool file and reads the final count. Not product code.

  atomics.py [--guests 3] [--n 100000] [--rounds xadd,plain] [--smp 1]
"""

import argparse
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "experiments"))
from qmp_lib import MiB, cache_dir, qemu_command, qemu_version  # noqa: E402

WIN = 256 * MiB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guests", type=int, default=3)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--rounds", default="xadd,plain")
    ap.add_argument("--smp", default="1")
    ap.add_argument("--timeout", type=float, default=1200)
    o = ap.parse_args()
    print(qemu_version(), flush=True)
    tag = f"spike11-atomics-{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="spike11-")
    share = os.path.join(tmp, "share")
    shutil.copytree(os.path.join(HERE, "guest"), os.path.join(share, "guest"))
    os.makedirs(os.path.join(share, "bin"))
    subprocess.run([os.environ.get("CC", "gcc"), "-std=c11", "-O2", "-Wall", "-Wextra", "-static", "-o",
                    os.path.join(share, "bin", "daxatomic"), os.path.join(HERE, "guest", "daxatomic.c")], check=True)
    pool = f"/dev/shm/{tag}.mem"
    with open(pool, "wb") as f:
        f.truncate(WIN)
    os.chmod(pool, 0o600)
    rounds = [r for r in o.rounds.split(",") if r]
    spec = ",".join(f"{m}:{o.n}" for m in rounds)
    g = os.path.join(cache_dir(), "guest")
    procs, logs = [], []
    t_start = time.monotonic()

    def pump(i, p):
        with open(os.path.join(tmp, f"head{i}.log"), "w") as log:
            for raw in p.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                log.write(line + "\n")
                if line.startswith(("SPIKE", "CXLMHD-READY", "CXLMHD-EXIT")):
                    print(f"[{time.monotonic() - t_start:7.1f}] head{i}: {line}", flush=True)

    fd = os.open(pool, os.O_RDWR)
    mm = mmap.mmap(fd, WIN, mmap.MAP_SHARED)
    get = lambda off: struct.unpack_from("<Q", mm, off)[0]  # noqa: E731
    results = []
    try:
        for i in range(o.guests):
            argv = qemu_command() + [
                "-machine", "q35,cxl=on,accel=tcg,cxl-fmw.0.targets.0=hb0,cxl-fmw.0.size=256M",
                "-cpu", "max,hypervisor=off", "-m", "512M", "-smp", o.smp,
                "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio",
                "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=hb0",
                "-device", "cxl-rp,port=0,bus=hb0,id=rp0,chassis=1,slot=0",
                "-object", f"memory-backend-file,id=static,mem-path={pool},offset=0,size={WIN},share=on",
                "-device", f"cxl-type3,bus=rp0,volatile-memdev=static,id=mem-static,sn={0x5200 + i}",
                "-fsdev", f"local,id=cxlmhd,path={share},security_model=none,readonly=on",
                "-device", "virtio-9p-pci,bus=pcie.0,fsdev=cxlmhd,mount_tag=cxlmhd",
                "-kernel", f"{g}/vmlinuz", "-initrd", f"{g}/initramfs.cpio.gz",
                "-append", f"console=ttyS0 {os.environ.get('SPIKE_KERNEL_ARGS', 'quiet')} cxlmhd.run=/scenario/guest/atomics.sh cxlmhd.head={i} cxlmhd.rounds={spec}",
            ]
            if i == 0:
                print("argv: " + " ".join(argv), flush=True)
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            procs.append(p)
            threading.Thread(target=pump, args=(i, p), daemon=True).start()
        deadline = time.monotonic() + o.timeout

        def wait_until(off, want):
            while get(off) < want:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"word at {off} is {get(off)}, want {want}")
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("a QEMU exited")
                time.sleep(0.05)

        for r, mode in enumerate(rounds):
            b = r * 4096
            wait_until(b + 192, o.guests)
            t0 = time.monotonic()
            struct.pack_into("<Q", mm, b + 64, 1)
            wait_until(b + 128, o.guests)
            dt = time.monotonic() - t0
            c = get(b)
            exp = o.guests * o.n
            results.append((mode, c, exp, dt))
            print(f"ROUND {r} mode={mode}: counter={c} expected={exp} lost={exp - c} ({100 * (exp - c) / exp:.2f}%) wall={dt:.1f}s", flush=True)
        for p in procs:
            p.wait(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        mm.close()
        os.close(fd)
        os.unlink(pool)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nsummary ({o.guests} guests, -smp {o.smp}, {o.n} ops each):")
    for mode, c, exp, dt in results:
        print(f"  {mode:5s}: {c}/{exp} ({'exact' if c == exp else f'{exp - c} lost'}), {dt:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
