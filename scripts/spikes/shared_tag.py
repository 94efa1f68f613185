#!/usr/bin/env python3
"""Spike (issue 11): one shared allocation, one tag, two heads.

Two stock guests (product layout, 2 spare ports each). The host hot-adds to
each head the SAME 256 MiB of the pool with the same tag in the LD's label
area, plus a decoy LD with another tag — in opposite order on the two heads,
so the shared LD is a different memN on each. Each guest finds the shared
LD with `cxl-mhd-devdax --tag`; head 0 writes, head 1 must read those bytes.
Not product code.
"""

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
sys.path.insert(0, HERE)
from lsa_label import lsa_image  # noqa: E402
from multi_ld import LD, LSA, qemu_args, ts_args  # noqa: E402
from qmp_lib import QMP, Transcript, qemu_command, qemu_version  # noqa: E402


def main():
    t = Transcript()
    t.note(qemu_version())
    name = f"spike11-shared-{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="spike11-")
    share = os.path.join(tmp, "share")
    shutil.copytree(os.path.join(HERE, "guest"), os.path.join(share, "guest"))
    pool = f"/dev/shm/{name}.mem"
    with open(pool, "wb") as f:
        f.truncate(4 * LD)
    os.chmod(pool, 0o600)
    shared_tag = str(uuid.uuid4())
    decoys = [str(uuid.uuid4()), str(uuid.uuid4())]
    keys, devs = ts_args(2, 4 * LD)
    lines = queue.Queue()
    procs, qmps, files = [], [], [pool]
    t0 = time.monotonic()
    try:
        for h in range(2):
            qmp_path = os.path.join(tmp, f"qmp{h}.sock")
            append = f"console=ttyS0 quiet cxlmhd.run=/scenario/guest/shared.sh cxlmhd.head={h} cxlmhd.tag={shared_tag} cxlmhd.timeout=600"
            argv = qemu_command() + qemu_args(keys, devs, "cxl-mhd-rp0", pool, qmp_path, share, append)
            if h == 0:
                t.note("argv: " + " ".join(argv))
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            procs.append(p)

            def pump(h=h, p=p):
                for raw in p.stdout:
                    lines.put((h, raw.decode(errors="replace").rstrip("\r\n")))

            threading.Thread(target=pump, daemon=True).start()
            for _ in range(300):
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(qmp_path)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    s.close()
                    time.sleep(0.1)
            q = QMP(s, f"head{h}", t)
            q.greeting()
            q.ok("qmp_capabilities")
            qmps.append(q)

        state = {}

        def wait_for(want, timeout=600):
            end = time.monotonic() + timeout
            while not all(k in state for k in want):
                h, line = lines.get(timeout=max(0.1, end - time.monotonic()))
                if line.startswith("SPIKE"):
                    print(f"[{time.monotonic() - t0:7.1f}] head{h}: {line}", flush=True)
                    state[(h, line.split()[0])] = line
                if time.monotonic() > end:
                    raise TimeoutError(want)

        wait_for([(0, "SPIKE-WAITING"), (1, "SPIKE-WAITING")])

        def add(h, port, slot, tag, gen):
            lsa = f"/dev/shm/{name}.h{h}.lsa{gen}"
            with open(lsa, "wb") as f:
                f.write(lsa_image(LSA, tag, LD)[0])
            files.append(lsa)
            q = qmps[h]
            q.ok("object-add", {"qom-type": "memory-backend-file", "id": f"ld{gen}", "mem-path": pool,
                                "offset": slot * LD, "size": LD, "share": True})
            q.ok("object-add", {"qom-type": "memory-backend-file", "id": f"lsa{gen}", "mem-path": lsa, "size": LSA, "share": True})
            q.ok("device_add", {"driver": "cxl-type3", "bus": port, "volatile-memdev": f"ld{gen}", "lsa": f"lsa{gen}",
                                "id": f"cxl-ld{gen}", "sn": 0x5300 + 16 * h + gen})

        # head 0: decoy first, so the shared LD is its mem2; head 1: shared first (mem1)
        add(0, "cxl-mhd-rp1", 2, decoys[0], 1)
        add(1, "cxl-mhd-rp1", 1, shared_tag, 1)
        time.sleep(3)
        add(0, "cxl-mhd-rp2", 1, shared_tag, 2)
        add(1, "cxl-mhd-rp2", 3, decoys[1], 2)
        wait_for([(0, "SPIKE-WROTE"), (1, "SPIKE-READ")])
        for p in procs:
            p.wait(timeout=120)
        while not lines.empty():
            h, line = lines.get()
            if line.startswith("SPIKE"):
                print(f"[{time.monotonic() - t0:7.1f}] head{h}: {line}", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in files:
            if os.path.exists(f):
                os.unlink(f)
        shutil.rmtree(tmp, ignore_errors=True)
    ok = (0, "SPIKE-WROTE") in state and (1, "SPIKE-READ") in state
    print(f"\nshared tag {shared_tag}: head 0 wrote, head 1 read the same bytes: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
