#!/usr/bin/env python3
"""Spike (issue 11): many hot-added LDs per head, each with its own region.

Boots one stock guest (the project's initramfs, Debian 6.12 kernel) with the
layout `--layout` for `--lds` spare ports, hot-adds that many 256 MiB LDs
(memory-backend-file over a /dev/shm pool at offsets), each with a small
`lsa=` backend whose label area the host pre-wrote with a CXL region label
carrying a tag UUID. The guest (scripts/spikes/guest/lds.sh) finds each new
memdev's tag with `cxl read-labels`, runs the prototype cxl-mhd-devdax
--tag, and writes the tag through /dev/daxN.M; the host checks those bytes
in the pool file at the LD's offset and times device_add -> devdax usable.

  multi_ld.py [--lds 6] [--layout perport|grouped] [--no-lsa]
Layouts: ts = src/qemu/layout.ts (the product's; windows sized for a whole
pool per port); perport = one pxb-cxl (+ window) per root port (QEMU leaves a
one-port bridge without HDM decoders: passthrough); grouped = 4 root ports
per pxb-cxl (each bridge has 4 HDM decoders). Not product code.
"""

import argparse
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "experiments"))
from qmp_lib import MiB, QMP, Transcript, cache_dir, qemu_command, qemu_version  # noqa: E402
from lsa_label import lsa_image  # noqa: E402

LD = 256 * MiB
LSA = 4096


def layout(k, mode, static=True):
    """[(bridge id, bus_nr, [(port id, port number)], window bytes)]: bridge 0 holds the static port rp0."""
    bridges = []
    if static:
        bridges.append(("hb0", 12, [("rp0", 0)], LD))
    if mode == "perport":
        for i in range(1, k + 1):
            bridges.append((f"hb{i}", 12 + 4 * i, [(f"rp{i}", 0)], LD))
    else:
        ports = [(f"rp{i}", i) for i in range(1, k + 1)]
        for g in range(0, k, 4):
            grp = [(p, j) for j, (p, _) in enumerate(ports[g : g + 4])]
            bridges.append((f"hb{len(bridges)}", 12 + 8 * len(bridges), grp, LD * len(grp)))
    return bridges


def spike_args(bridges):
    keys, devs = [], []
    for w, (hb, bus_nr, ports, size) in enumerate(bridges):
        keys += [f"cxl-fmw.{w}.targets.0={hb}", f"cxl-fmw.{w}.size={size // MiB}M"]
        devs += ["-device", f"pxb-cxl,bus_nr={bus_nr},bus=pcie.0,id={hb}"]
        for pid, num in ports:
            devs += ["-device", f"cxl-rp,port={num},bus={hb},id={pid},chassis={w + 1},slot={num}"]
    return keys, devs


def ts_args(k, ld_max):
    """The product's layout: src/qemu/layout.ts (built into dist/ by `npx tsc -p tsconfig.build.json`)."""
    mod = os.path.join(HERE, "..", "..", "dist", "src", "qemu", "layout.js")
    js = (f"import('{mod}').then(m => console.log(JSON.stringify(m.layoutArgs(m.cxlLayout("
          f"{{staticBytes: {LD}, dcBytes: 0, sparePorts: {k}, ldMaxBytes: {ld_max}}})))))")
    out = json.loads(subprocess.run(["node", "-e", js], capture_output=True, text=True, check=True).stdout)
    return out["machineKeys"], out["devices"]


def qemu_args(keys, devs, static_port, pool, qmp_path, share, append, cpu="max,hypervisor=off"):
    m = ",".join(["q35,cxl=on,accel=tcg", *keys])
    g = os.path.join(cache_dir(), "guest")
    return [
        "-machine", m, "-cpu", cpu, "-m", "1G", "-smp", "1",
        "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio",
        "-qmp", f"unix:{qmp_path},server=on,wait=off",
        *devs,
        "-object", f"memory-backend-file,id=static,mem-path={pool},offset=0,size={LD},share=on",
        "-device", f"cxl-type3,bus={static_port},volatile-memdev=static,id=mem-static,sn=0x5100",
        "-fsdev", f"local,id=cxlmhd,path={share},security_model=none",
        "-device", "virtio-9p-pci,bus=pcie.0,fsdev=cxlmhd,mount_tag=cxlmhd",
        "-kernel", f"{g}/vmlinuz", "-initrd", f"{g}/initramfs.cpio.gz", "-append", append,
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lds", type=int, default=6)
    ap.add_argument("--layout", choices=["perport", "grouped", "ts"], default="perport")
    ap.add_argument("--no-lsa", action="store_true")
    ap.add_argument("--teardown", action="store_true", help="afterwards destroy the regions oldest first")
    ap.add_argument("--churn", action="store_true", help="then device_del LD 1 (region live) and hot-add a new LD on its port")
    ap.add_argument("--window-gib", type=int, default=0, help="ts layout: size each spare window for an LD of this many GiB")
    ap.add_argument("--phys-bits", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900)
    o = ap.parse_args()
    t = Transcript()
    t.note(qemu_version())
    tag = f"spike11-{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="spike11-")
    share = os.path.join(tmp, "share")
    shutil.copytree(os.path.join(HERE, "guest"), os.path.join(share, "guest"))
    pool = f"/dev/shm/{tag}.mem"
    with open(pool, "wb") as f:
        f.truncate(LD * (o.lds + 2))
    os.chmod(pool, 0o600)
    lsas = []
    qmp_path = os.path.join(tmp, "qmp.sock")
    if o.layout == "ts":
        keys, devs = ts_args(o.lds, (o.window_gib << 30) or LD * (o.lds + 1))
        port = lambda i: f"cxl-mhd-rp{i}"  # noqa: E731
    else:
        keys, devs = spike_args(layout(o.lds, o.layout))
        port = lambda i: f"rp{i}"  # noqa: E731
    append = f"console=ttyS0 quiet cxlmhd.run=/scenario/guest/lds.sh cxlmhd.lds={o.lds + int(o.churn)} cxlmhd.teardown={int(o.teardown)} cxlmhd.timeout={int(o.timeout)}"
    argv = qemu_command() + qemu_args(keys, devs, port(0), pool, qmp_path, share, append,
                                         "max,hypervisor=off" + (f",phys-bits={o.phys_bits}" if o.phys_bits else ""))
    t.note("argv: " + " ".join(argv))
    lines = queue.Queue()
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def reader():
        for raw in qemu.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.put((time.monotonic(), line))
        lines.put((time.monotonic(), None))

    threading.Thread(target=reader, daemon=True).start()
    t_start = time.monotonic()
    deadline = t_start + o.timeout

    def wait_for(prefix):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix} line")
            try:
                ts, line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise EOFError("QEMU exited")
            if line.startswith(("SPIKE", "CXLMHD")):
                print(f"[{ts - t_start:8.2f}] {line}", flush=True)
            if line.startswith(prefix):
                return ts, line

    results = []
    try:
        for _ in range(300):  # QEMU binds the socket a moment before it listens
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(qmp_path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                time.sleep(0.1)
        else:
            raise TimeoutError("QEMU's QMP socket never accepted")
        q = QMP(s, "qmp", t)
        q.greeting()
        q.ok("qmp_capabilities")
        wait_for("SPIKE-WAITING")
        def hot_add(i, port_id, gen):
            ld_tag = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{i}"))
            q.ok("object-add", {"qom-type": "memory-backend-file", "id": f"ld{gen}", "mem-path": pool,
                                "offset": LD * i, "size": LD, "share": True})
            dev = {"driver": "cxl-type3", "bus": port_id, "volatile-memdev": f"ld{gen}", "id": f"cxl-ld{gen}", "sn": 0x5100 + gen}
            if not o.no_lsa:
                lsa_path = f"/dev/shm/{tag}.lsa{i}"
                with open(lsa_path, "wb") as f:
                    f.write(lsa_image(LSA, ld_tag, LD)[0])
                lsas.append(lsa_path)
                q.ok("object-add", {"qom-type": "memory-backend-file", "id": f"lsa{gen}", "mem-path": lsa_path,
                                    "size": LSA, "share": True})
                dev["lsa"] = f"lsa{gen}"
            t0 = time.monotonic()
            q.ok("device_add", dev)
            ts, line = wait_for(("SPIKE-DAX", "SPIKE-FAIL", "SPIKE-NOLSA"))
            ok = line.startswith("SPIKE-DAX") and f"tag={ld_tag}" in line
            with open(pool, "rb") as f:
                f.seek(LD * i)
                got = f.read(len(f"spike11:{ld_tag}")).decode(errors="replace")
            seen = got == f"spike11:{ld_tag}"
            results.append((i, ts - t0, ok, seen, line))
            print(f"LD {i}: device_add -> devdax usable {ts - t0:.2f} s; tag matched={ok}; guest bytes in pool={seen}", flush=True)

        for i in range(1, o.lds + 1):
            hot_add(i, port(i), i)
        if o.churn:
            # Release the oldest LD while its region is live, then reuse its port for a new LD.
            t0 = time.monotonic()
            q.ok("device_del", {"id": "cxl-ld1"})
            gone = q.wait_gone("cxl-ld1", 60)
            print(f"CHURN: device_del cxl-ld1 -> gone from QOM after {gone} s", flush=True)
            hot_add(o.lds + 1, port(1), 100)
        wait_for("SPIKE-REGIONS")
        wait_for("CXLMHD-EXIT")
        # Did the guest (cxl driver, libnvdimm) write to any label area? Compare with what the host wrote.
        for path in lsas:
            i = int(path.rsplit("lsa", 1)[1])
            ld_tag = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{i}"))
            with open(path, "rb") as f:
                same = f.read() == lsa_image(LSA, ld_tag, LD)[0]
            print(f"LSA {i}: {'unchanged' if same else 'MODIFIED by the guest'}", flush=True)
    finally:
        qemu.kill()
        qemu.wait()
        for p in [pool, *lsas]:
            if os.path.exists(p):
                os.unlink(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nsummary (layout %s, %d LDs):" % (o.layout, o.lds))
    for i, dt, ok, seen, line in results:
        print(f"  LD {i:2d}: {dt:6.2f} s  tag ok={ok} bytes ok={seen}  {line}")
    return 0 if all(ok and seen for _, _, ok, seen, _ in results) and len(results) == o.lds + int(o.churn) else 1


if __name__ == "__main__":
    sys.exit(main())
