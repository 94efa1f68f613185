#!/usr/bin/env python3
"""One CXL head under QMP, no guest OS: everything docs/qemu-facts.md claims.

Starts QEMU (TCG, -S, -display none) with the argument set `qemu-args` will
print, lets QEMU dial our Unix sockets (one head monitor, one auxiliary
monitor), and walks through: device discovery with qom-list/qom-get, cont,
LD hot-add/remove, FM-LD port via getfd + chardev-add + virtserialport, and
DCD extents. Every QMP message is printed; the pool file is a sparse 1 GiB
/dev/shm file that is removed at the end, and QEMU is always killed.

usage: head_qmp.py [--transcript FILE]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp_lib import GiB, MiB, QMP, Transcript, listen_unix, make_pool_file, qemu_command, qemu_version  # noqa: E402

POOL = "/dev/shm/cxl-mhd-helper-test.mem"
POOL_SIZE = 1 * GiB
SPARE_PORTS = 3  # rp1..rp3 stay empty for hot-add; rp4 carries the DCD device


def head_args(sock, aux_sock):
    return [
        "-S",
        "-display", "none",
        "-machine", "q35,cxl=on,accel=tcg,"
                    "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
        "-cpu", "max,hypervisor=off",
        "-m", "256M",
        "-chardev", f"socket,id=cxl-mhd,path={sock},reconnect-ms=1000",
        "-mon", "chardev=cxl-mhd,mode=control",
        # A second monitor, as a watcher process would use.
        "-chardev", f"socket,id=cxl-mhd-aux,path={aux_sock},reconnect-ms=1000",
        "-mon", "chardev=cxl-mhd-aux,mode=control",
        # Static window: pool bytes [0, 256M).
        "-object", f"memory-backend-file,id=cxl-mhd-win0,mem-path={POOL},offset=0,size=256M,share=on",
        "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
        *[a for n in range(SPARE_PORTS + 2)
          for a in ("-device", f"cxl-rp,port={n},bus=cxl.1,id=rp{n},chassis=0,slot={n}")],
        "-device", "cxl-type3,bus=rp0,volatile-memdev=cxl-mhd-win0,id=cxl-mhd-mem0,sn=0x4d48440000000000",
        # DCD: static 256M at pool [256M,512M) + one DC region over the whole pool.
        "-object", f"memory-backend-file,id=cxl-mhd-dcs,mem-path={POOL},offset=256M,size=256M,share=on",
        "-object", f"memory-backend-file,id=cxl-mhd-dc,mem-path={POOL},offset=0,size=1G,share=on",
        "-device", "cxl-type3,bus=rp4,volatile-memdev=cxl-mhd-dcs,volatile-dc-memdev=cxl-mhd-dc,"
                   "num-dc-regions=1,id=cxl-mhd-dcd,sn=0x4d48440000000004",
        # Without bus= QEMU puts it on the pxb-cxl bus (the newest PCI bus) and fails.
        "-device", "virtio-serial-pci,bus=pcie.0,id=cxl-mhd-vser",
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcript")
    opts = ap.parse_args()

    t = Transcript()
    t.note(qemu_version())
    tmp = tempfile.mkdtemp(prefix="cxl-mhd-exp-")
    sock_path, aux_path = os.path.join(tmp, "head0.sock"), os.path.join(tmp, "aux.sock")
    srv, aux_srv = listen_unix(sock_path), listen_unix(aux_path)
    make_pool_file(POOL, POOL_SIZE)
    argv = qemu_command() + head_args(sock_path, aux_path)
    t.note("argv: " + " ".join(argv))
    log = open(os.path.join(tmp, "qemu.stderr"), "w+")
    t0 = time.monotonic()
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    fmld_ours = None
    try:
        srv.settimeout(30)
        conn, _ = srv.accept()
        t_conn = time.monotonic() - t0
        q = QMP(conn, "head", t)
        q.greeting()
        t_greet = time.monotonic() - t0
        t.note(f"spawn -> accept {t_conn:.3f}s, spawn -> greeting {t_greet:.3f}s")
        aux_srv.settimeout(30)
        aux_conn, _ = aux_srv.accept()
        a = QMP(aux_conn, "aux", t)
        a.greeting()
        a.ok("qmp_capabilities")

        t.note("capabilities, status")
        q.ok("qmp_capabilities")
        q.ok("query-status")

        t.note("find the cxl-type3 devices and their backends")
        periph = q.ok("qom-list", {"path": "/machine/peripheral"})
        type3 = []
        for p in periph:
            if p["type"].startswith("child<"):
                ty = q.ok("qom-get", {"path": f"/machine/peripheral/{p['name']}", "property": "type"})
                if ty == "cxl-type3":
                    type3.append(p["name"])
        t.note(f"cxl-type3 devices: {type3}")
        q.ok("qom-list", {"path": "/machine/peripheral/cxl-mhd-mem0"})
        for prop in ("volatile-memdev", "volatile-dc-memdev", "sn", "num-dc-regions", "parent_bus", "hotpluggable", "realized"):
            q.cmd("qom-get", {"path": "/machine/peripheral/cxl-mhd-mem0", "property": prop})
        backend = q.ok("qom-get", {"path": "/machine/peripheral/cxl-mhd-mem0", "property": "volatile-memdev"})
        q.ok("qom-list", {"path": backend})
        for prop in ("mem-path", "offset", "size", "share", "type", "discard-data"):
            q.cmd("qom-get", {"path": backend, "property": prop})
        q.cmd("qom-get", {"path": "/machine/peripheral/cxl-mhd-dcd", "property": "volatile-dc-memdev"})
        q.cmd("qom-get", {"path": "/machine/peripheral/cxl-mhd-dcd", "property": "num-dc-regions"})
        q.cmd("qom-get", {"path": "/machine/peripheral/rp1", "property": "type"})
        q.cmd("qom-list", {"path": "/machine/peripheral/rp1"})
        q.cmd("qom-get", {"path": "/machine", "property": "cxl-fmw"})

        t.note("LD hot-add while paused (prelaunch); sn must be a JSON number in QMP")
        q.ok("object-add", {"qom-type": "memory-backend-file", "id": "cxl-mhd-ld1", "mem-path": POOL,
                            "offset": 512 * MiB, "size": 256 * MiB, "share": True})
        q.cmd("device_add", {"driver": "cxl-type3", "bus": "rp1", "volatile-memdev": "cxl-mhd-ld1",
                             "id": "cxl-mhd-ld1", "sn": "0x4d48440000000101"})
        q.ok("device_add", {"driver": "cxl-type3", "bus": "rp1", "volatile-memdev": "cxl-mhd-ld1",
                            "id": "cxl-mhd-ld1", "sn": 0x4d48440000000101})
        q.ok("qom-get", {"path": "/machine/peripheral/cxl-mhd-ld1", "property": "hotplugged"})

        t.note("monitor reconnect: drop the connection, QEMU dials again after reconnect-ms")
        q.sock.close()
        t_drop = time.monotonic()
        conn, _ = srv.accept()
        q = QMP(conn, "head", t)
        q.greeting()
        t.note(f"redial + greeting after {time.monotonic() - t_drop:.3f}s")
        q.cmd("query-status")
        q.ok("qmp_capabilities")
        q.ok("query-status")

        t.note("cont")
        q.ok("cont")
        q.wait_event("RESUME", 2)
        q.ok("query-status")
        time.sleep(1)

        t.note("LD hot-add while running (no guest OS)")
        q.ok("object-add", {"qom-type": "memory-backend-file", "id": "cxl-mhd-ld2", "mem-path": POOL,
                            "offset": 768 * MiB, "size": 256 * MiB, "share": True})
        q.cmd("device_add", {"driver": "cxl-type3", "bus": "rp2", "volatile-memdev": "cxl-mhd-ld2",
                             "id": "cxl-mhd-ld2", "sn": 0x4d48440000000102})
        q.cmd("qom-get", {"path": "/machine/peripheral/cxl-mhd-ld2", "property": "hotplugged"})
        t.note("device_del while running, no guest to acknowledge")
        q.cmd("device_del", {"id": "cxl-mhd-ld2"})
        ev = q.wait_event("DEVICE_DELETED", 8)
        t.note(f"DEVICE_DELETED within 8s: {ev is not None}")
        q.cmd("device_del", {"id": "cxl-mhd-ld2"})
        q.cmd("object-del", {"id": "cxl-mhd-ld2"})
        t.note("system_reset with the unplug pending")
        q.cmd("system_reset")
        ev = q.wait_event("DEVICE_DELETED", 5)
        t.note(f"DEVICE_DELETED after reset: {ev is not None}")
        q.cmd("qom-get", {"path": "/machine/peripheral/cxl-mhd-ld2", "property": "type"})
        q.cmd("object-del", {"id": "cxl-mhd-ld2"})

        t.note("hot-add with an offset past the end of the pool file")
        q.cmd("object-add", {"qom-type": "memory-backend-file", "id": "cxl-mhd-bad", "mem-path": POOL,
                             "offset": 1 * GiB, "size": 256 * MiB, "share": True})
        q.cmd("object-del", {"id": "cxl-mhd-bad"})
        t.note("hot-add with a non-256M size")
        q.cmd("object-add", {"qom-type": "memory-backend-file", "id": "cxl-mhd-odd", "mem-path": POOL,
                             "offset": 0, "size": 128 * MiB, "share": True})
        q.cmd("device_add", {"driver": "cxl-type3", "bus": "rp3", "volatile-memdev": "cxl-mhd-odd",
                             "id": "cxl-mhd-odd"})
        q.cmd("device_del", {"id": "cxl-mhd-odd"})
        q.cmd("object-del", {"id": "cxl-mhd-odd"})

        t.note("FM-LD port: getfd + chardev-add (fd) + virtserialport")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fmld_ours = ours
        q.ok("getfd", {"fdname": "cxl-mhd-fmld"}, fds=[theirs.fileno()])
        theirs.close()
        q.ok("chardev-add", {"id": "cxl-mhd-fmld", "backend": {"type": "socket", "data": {
            "addr": {"type": "fd", "data": {"str": "cxl-mhd-fmld"}}, "server": False}}})
        q.ok("device_add", {"driver": "virtserialport", "bus": "cxl-mhd-vser.0", "chardev": "cxl-mhd-fmld",
                            "name": "cxl-mhd.fmld", "id": "cxl-mhd-fmld-port"})
        t.note("seen from the other monitor")
        chardevs = a.ok("query-chardev")
        t.note(f"chardev labels: {[c['label'] for c in chardevs]}")
        a.ok("qom-get", {"path": "/machine/peripheral/cxl-mhd-fmld-port", "property": "type"})
        a.ok("qom-get", {"path": "/machine/peripheral/cxl-mhd-fmld-port", "property": "name"})
        a.ok("qom-get", {"path": "/machine/peripheral/cxl-mhd-fmld-port", "property": "chardev"})
        t.note("getfd of a name already taken, chardev-add of a name already taken")
        ours2, theirs2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        q.cmd("getfd", {"fdname": "cxl-mhd-fmld"}, fds=[theirs2.fileno()])
        q.cmd("chardev-add", {"id": "cxl-mhd-fmld", "backend": {"type": "socket", "data": {
            "addr": {"type": "fd", "data": {"str": "cxl-mhd-fmld"}}, "server": False}}})
        q.cmd("closefd", {"fdname": "cxl-mhd-fmld"})
        theirs2.close()
        ours2.close()

        t.note("DCD: add/release extents with no guest (running)")
        dcd = "/machine/peripheral/cxl-mhd-dcd"
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "prescriptive",
                                           "region": 0, "extents": [{"offset": 0, "len": 256 * MiB}]})
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "prescriptive",
                                           "region": 0, "extents": [{"offset": 0, "len": 2 * MiB}]})
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "prescriptive",
                                           "region": 0, "extents": [{"offset": 768 * MiB, "len": 256 * MiB}]})
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "prescriptive",
                                           "region": 0, "extents": [{"offset": 1 * MiB, "len": 2 * MiB}]})
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "prescriptive",
                                           "region": 0, "extents": [{"offset": 1 * GiB, "len": 2 * MiB}]})
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 1, "selection-policy": "prescriptive",
                                           "region": 0, "extents": [{"offset": 512 * MiB, "len": 2 * MiB}]})
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "free",
                                           "region": 0, "extents": [{"offset": 512 * MiB, "len": 2 * MiB}]})
        q.cmd("cxl-release-dynamic-capacity", {"path": dcd, "host-id": 0, "removal-policy": "prescriptive",
                                               "region": 0, "extents": [{"offset": 0, "len": 256 * MiB}]})
        q.cmd("cxl-add-dynamic-capacity", {"path": "/machine/peripheral/cxl-mhd-mem0", "host-id": 0,
                                           "selection-policy": "prescriptive", "region": 0,
                                           "extents": [{"offset": 0, "len": 2 * MiB}]})
        t.note("DCD device hot-add (DC region over the whole pool) on spare rp3")
        q.ok("object-add", {"qom-type": "memory-backend-file", "id": "cxl-mhd-dc2", "mem-path": POOL,
                            "offset": 0, "size": POOL_SIZE, "share": True})
        q.cmd("device_add", {"driver": "cxl-type3", "bus": "rp3", "volatile-dc-memdev": "cxl-mhd-dc2",
                             "num-dc-regions": 1, "id": "cxl-mhd-dcd2", "sn": 0x4d48440000000103})
        q.cmd("cxl-add-dynamic-capacity", {"path": "/machine/peripheral/cxl-mhd-dcd2", "host-id": 0,
                                           "selection-policy": "prescriptive", "region": 0,
                                           "extents": [{"offset": 0, "len": 2 * MiB}]})
        t.note("DCD on a paused VM")
        q.ok("stop")
        q.ok("query-status")
        q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "prescriptive",
                                           "region": 0, "extents": [{"offset": 512 * MiB, "len": 256 * MiB}]})
        for i in range(10):
            q.cmd("cxl-add-dynamic-capacity", {"path": dcd, "host-id": 0, "selection-policy": "prescriptive",
                                               "region": 0, "extents": [{"offset": (300 + 2 * i) * MiB, "len": 2 * MiB}]})

        t.note("quit")
        q.cmd("quit")
        qemu.wait(10)
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        if fmld_ours:
            fmld_ours.close()
        log.seek(0)
        err = log.read()
        if err:
            t.note("QEMU stderr:\n" + err)
        os.unlink(POOL)
        for p in (sock_path, aux_path):
            if os.path.exists(p):
                os.unlink(p)
        os.unlink(log.name)
        os.rmdir(tmp)
        if opts.transcript:
            with open(opts.transcript, "w") as f:
                f.write("\n".join(t.lines) + "\n")


if __name__ == "__main__":
    main()
