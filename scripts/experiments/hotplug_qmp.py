#!/usr/bin/env python3
"""LD hot-add/hot-remove lifecycle of a cxl-type3 on a spare cxl-rp, no guest OS.

Answers: does device_add work in prelaunch and while running; what does
device_del do when no guest acknowledges (event? device gone? port reusable?);
can the memory backend be object-del'ed afterwards; can ids be reused.

usage: hotplug_qmp.py [--transcript FILE] [--kernel VMLINUZ --initrd INITRD]
  With --kernel/--initrd the guest boots that kernel (console on stderr of
  QEMU, kept in the transcript) so the guest's pciehp can acknowledge.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp_lib import GiB, MiB, QMP, Transcript, listen_unix, make_pool_file, qemu_command, qemu_version  # noqa: E402

POOL = "/dev/shm/cxl-mhd-helper-test.mem"


def args_for(sock, kernel, initrd, console):
    a = [
        "-S", "-display", "none",
        "-machine", "q35,cxl=on,accel=tcg,cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
        "-cpu", "max,hypervisor=off", "-m", "512M",
        "-chardev", f"socket,id=cxl-mhd,path={sock},reconnect-ms=1000",
        "-mon", "chardev=cxl-mhd,mode=control",
        "-object", f"memory-backend-file,id=cxl-mhd-win0,mem-path={POOL},offset=0,size=256M,share=on",
        "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
        "-device", "cxl-rp,port=0,bus=cxl.1,id=rp0,chassis=0,slot=0",
        "-device", "cxl-rp,port=1,bus=cxl.1,id=rp1,chassis=0,slot=1",
        "-device", "cxl-rp,port=2,bus=cxl.1,id=rp2,chassis=0,slot=2",
        "-device", "cxl-type3,bus=rp0,volatile-memdev=cxl-mhd-win0,id=cxl-mhd-mem0,sn=0x4d48440000000000",
        "-device", "virtio-serial-pci,bus=pcie.0,id=cxl-mhd-vser",
    ]
    if kernel:
        a += ["-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 loglevel=7",
              "-serial", f"file:{console}", "-nodefaults", "-no-reboot"]
    return a


def pci_under(q, port_id):
    """qdev ids of the devices query-pci shows behind bridge `port_id`."""
    found = []

    def walk(devs):
        for d in devs:
            bridge = d.get("pci_bridge")
            if bridge:
                if d.get("qdev_id") == port_id:
                    found.extend(c.get("qdev_id", "?") for c in bridge.get("devices", []))
                walk(bridge.get("devices", []))

    for bus in q.ok("query-pci"):
        walk(bus["devices"])
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcript")
    ap.add_argument("--kernel")
    ap.add_argument("--initrd")
    ap.add_argument("--boot-wait", type=float, default=30)
    opts = ap.parse_args()

    t = Transcript()
    t.note(qemu_version())
    tmp = tempfile.mkdtemp(prefix="cxl-mhd-exp-")
    sock = os.path.join(tmp, "head0.sock")
    console = os.path.join(tmp, "console.log")
    srv = listen_unix(sock)
    make_pool_file(POOL, 1 * GiB)
    argv = qemu_command() + args_for(sock, opts.kernel, opts.initrd, console)
    t.note("argv: " + " ".join(argv))
    log = open(os.path.join(tmp, "qemu.stderr"), "w+")
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        srv.settimeout(30)
        conn, _ = srv.accept()
        q = QMP(conn, "head", t)
        q.greeting()
        q.ok("qmp_capabilities")

        def add(n, rp, offset):
            q.ok("object-add", {"qom-type": "memory-backend-file", "id": f"cxl-mhd-ld{n}", "mem-path": POOL,
                                "offset": offset, "size": 256 * MiB, "share": True})
            return q.cmd("device_add", {"driver": "cxl-type3", "bus": rp, "volatile-memdev": f"cxl-mhd-ld{n}",
                                        "id": f"cxl-mhd-ld{n}", "sn": 0x4d48440000000100 + n})

        t.note("prelaunch: hot-add on rp1, then device_del")
        add(1, "rp1", 256 * MiB)
        q.ok("qom-get", {"path": "/machine/peripheral/cxl-mhd-ld1", "property": "hotplugged"})
        t.note(f"query-pci behind rp1: {pci_under(q, 'rp1')}")
        q.cmd("device_del", {"id": "cxl-mhd-ld1"})
        t.note(f"gone from /machine/peripheral after: {q.wait_gone('cxl-mhd-ld1', 5)}")
        ev = q.wait_event("DEVICE_DELETED", 5)
        t.note(f"DEVICE_DELETED within 5s (prelaunch): {ev is not None}")
        q.cmd("qom-get", {"path": "/machine/peripheral/cxl-mhd-ld1", "property": "type"})
        t.note(f"query-pci behind rp1: {pci_under(q, 'rp1')}")
        q.cmd("object-del", {"id": "cxl-mhd-ld1"})

        t.note("prelaunch: hot-add on rp1 again (new backend id) and keep it")
        r = add(3, "rp1", 256 * MiB)
        t.note(f"re-add on the same port after prelaunch device_del: {r}")

        q.ok("cont")
        q.ok("query-status")
        if opts.kernel:
            t.note(f"waiting {opts.boot_wait}s for the guest to boot")
            time.sleep(opts.boot_wait)

        t.note("running: hot-add on rp2, then device_del")
        add(2, "rp2", 512 * MiB)
        time.sleep(3 if opts.kernel else 1)
        t.note(f"query-pci behind rp2: {pci_under(q, 'rp2')}")
        q.cmd("device_del", {"id": "cxl-mhd-ld2"})
        t.note(f"gone from /machine/peripheral after: {q.wait_gone('cxl-mhd-ld2', 20)}")
        ev = q.wait_event("DEVICE_DELETED", 10)
        t.note(f"DEVICE_DELETED within 10s more (running): {ev is not None}")
        q.cmd("qom-get", {"path": "/machine/peripheral/cxl-mhd-ld2", "property": "type"})
        t.note(f"query-pci behind rp2: {pci_under(q, 'rp2')}")
        q.cmd("object-del", {"id": "cxl-mhd-ld2"})
        q.cmd("query-memdev")
        t.note("running: re-add on rp2 with the same device id, new backend id")
        q.ok("object-add", {"qom-type": "memory-backend-file", "id": "cxl-mhd-ld2b", "mem-path": POOL,
                            "offset": 512 * MiB, "size": 256 * MiB, "share": True})
        r = q.cmd("device_add", {"driver": "cxl-type3", "bus": "rp2", "volatile-memdev": "cxl-mhd-ld2b",
                                 "id": "cxl-mhd-ld2", "sn": 0x4d48440000000202})
        t.note(f"query-pci behind rp2: {pci_under(q, 'rp2')}")
        t.note("running: re-use the stuck backend cxl-mhd-ld2 for a new device")
        q.cmd("device_add", {"driver": "cxl-type3", "bus": "rp2", "volatile-memdev": "cxl-mhd-ld2",
                             "id": "cxl-mhd-ld2c"})
        t.note("device_del of the device that was hot-added in prelaunch (rp1)")
        q.cmd("device_del", {"id": "cxl-mhd-ld3"})
        t.note(f"gone from /machine/peripheral after: {q.wait_gone('cxl-mhd-ld3', 20)}")
        ev = q.wait_event("DEVICE_DELETED", 5)
        t.note(f"DEVICE_DELETED within 20s: {ev is not None}")
        t.note(f"query-pci behind rp1: {pci_under(q, 'rp1')}")
        q.cmd("device_del", {"id": "cxl-mhd-mem0"})
        t.note(f"gone from /machine/peripheral after: {q.wait_gone('cxl-mhd-mem0', 20)}")
        q.cmd("device_del", {"id": "cxl-mhd-mem0"})
        ev = q.wait_event("DEVICE_DELETED", 5)
        t.note(f"cold-plugged device_del -> DEVICE_DELETED: {ev is not None}")
        q.cmd("quit")
        qemu.wait(10)
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        log.seek(0)
        err = log.read()
        if err:
            t.note("QEMU stderr:\n" + err)
        if os.path.exists(console):
            with open(console, errors="replace") as f:
                t.note("guest console:\n" + f.read())
            os.unlink(console)
        os.unlink(POOL)
        if os.path.exists(sock):
            os.unlink(sock)
        os.unlink(log.name)
        os.rmdir(tmp)
        if opts.transcript:
            with open(opts.transcript, "w") as f:
                f.write("\n".join(t.lines) + "\n")


if __name__ == "__main__":
    main()
