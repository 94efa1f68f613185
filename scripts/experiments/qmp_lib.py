"""Shared bits of the QEMU/QMP experiments behind docs/qemu-facts.md.

Not product code: these scripts exist so the facts in docs/qemu-facts.md can
be re-checked against a new QEMU. They find QEMU the way src/qemu/binary.ts
does (CXL_MHD_QEMU is not honoured here; the trixie root or a host QEMU is).
"""

import json
import os
import shutil
import socket
import subprocess
import time

MiB = 1 << 20
GiB = 1 << 30


def cache_dir():
    if os.environ.get("CXL_MHD_CACHE"):
        return os.environ["CXL_MHD_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache")
    return os.path.join(xdg, "cxl-mhd")


def qemu_command():
    """argv prefix (program words + firmware args) for qemu-system-x86_64."""
    root = os.path.join(cache_dir(), "trixie-root")
    if os.path.exists(os.path.join(root, ".cxl-mhd-root-ok")):
        libs = f"{root}/lib/x86_64-linux-gnu:{root}/usr/lib/x86_64-linux-gnu"
        return [
            f"{root}/lib64/ld-linux-x86-64.so.2", "--library-path", libs,
            f"{root}/usr/bin/qemu-system-x86_64",
            "-L", f"{root}/usr/share/qemu", "-L", f"{root}/usr/share/seabios",
        ]
    host = shutil.which("qemu-system-x86_64")
    if host:
        return [host]
    raise SystemExit("no QEMU: run `make setup` (scripts/setup-qemu.sh)")


def qemu_version():
    out = subprocess.run(qemu_command()[:4] + ["--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "?"


class Transcript:
    """Collects every QMP message so the findings can quote them exactly."""

    def __init__(self):
        self.lines = []

    def note(self, text):
        print(f"## {text}", flush=True)
        self.lines.append(f"## {text}")

    def msg(self, who, direction, obj):
        line = f"{who} {direction} {json.dumps(obj, separators=(',', ':'))}"
        print(line, flush=True)
        self.lines.append(line)


class QMP:
    def __init__(self, conn, name, transcript):
        self.sock = conn
        self.name = name
        self.t = transcript
        self.buf = b""
        self.events = []

    def _read(self, timeout, log=True):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no message within {timeout}s")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"{self.name}: QEMU closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        obj = json.loads(line)
        if log or "event" in obj:
            self.t.msg(self.name, "<-", obj)
        return obj

    def greeting(self, timeout=30):
        return self._read(timeout)

    def send(self, execute, arguments=None, fds=None, log=True):
        obj = {"execute": execute}
        if arguments is not None:
            obj["arguments"] = arguments
        if log:
            self.t.msg(self.name, "->", obj if not fds else {**obj, "#fds": len(fds)})
        data = json.dumps(obj).encode() + b"\n"
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)

    def cmd(self, execute, arguments=None, fds=None, timeout=30, log=True):
        self.send(execute, arguments, fds, log)
        while True:
            obj = self._read(timeout, log)
            if "event" in obj:
                self.events.append(obj)
                continue
            return obj

    def ok(self, execute, arguments=None, **kw):
        r = self.cmd(execute, arguments, **kw)
        if "error" in r:
            raise RuntimeError(f"{execute} failed: {r['error']}")
        return r["return"]

    def wait_gone(self, dev_id, timeout):
        """Seconds until /machine/peripheral/<dev_id> disappears (polled, not logged), else None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            r = self.cmd("qom-get", {"path": f"/machine/peripheral/{dev_id}", "property": "type"}, log=False)
            if "error" in r:
                return time.monotonic() - t0
            time.sleep(0.1)
        return None

    def wait_event(self, name, timeout):
        """The first event `name` (already queued or arriving within timeout), else None."""
        for i, e in enumerate(self.events):
            if e["event"] == name:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                obj = self._read(left)
            except TimeoutError:
                return None
            if obj.get("event") == name:
                return obj
            if "event" in obj:
                self.events.append(obj)


def listen_unix(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    return s


def make_pool_file(path, size):
    """Sparse file: the pool's bytes cost nothing until written."""
    with open(path, "wb") as f:
        f.truncate(size)
