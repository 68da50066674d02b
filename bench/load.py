#!/usr/bin/python3
# load.py -- figures (not a test) for one cc-client under attack while good consoles
# keep connecting: their p50/p99 time to established, cc-client's peak RSS and threads.
#
# Usage: /usr/bin/python3 bench/load.py [--build build] [--seconds 20] [--rate 1000]
#        [--silent 300] [--flood-mib 256] [--license-delay 0.05]
# Everything runs on loopback and stops by itself after --seconds (plus a few seconds
# to wind down). It starts its own cc-client (psk, a counting licence server from
# test/hostile/attack.py) and, at once:
#   - TCP connect+close from distinct 127.0.x.y addresses at --rate per second (each
#     kept open ~50 ms, long enough for the client to start work for it),
#   - --silent connections that never send a byte (held to the end),
#   - one PING flood from a peer that never sent HELLO and never reads (at most
#     --flood-mib MiB, so a client without back-pressure cannot take the machine),
#   - good consoles (cc-console --auth psk), one after another.

import argparse
import collections
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(SRC, "test", "hostile"))
import ccpeer as cp  # noqa: E402


def wait_file(path, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return True
        time.sleep(0.05)
    return False


class Connector(threading.Thread):
    """connect+close at `rate` per second, each from the next of many sources."""

    def __init__(self, port, rate, stop):
        super().__init__(daemon=True)
        self.port, self.rate, self.stop = port, rate, stop
        self.done = self.errors = 0

    def run(self):
        srcs = cp.sources(4000, first_net=100)
        open_ = collections.deque()
        t0 = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while self.done + self.errors < due and not self.stop.is_set():
                src = srcs[(self.done + self.errors) % len(srcs)]
                try:
                    s = socket.socket()
                    s.settimeout(2)
                    s.bind((src, 0))
                    s.connect(("127.0.0.1", self.port))
                    open_.append((time.monotonic(), s))
                    self.done += 1
                except OSError:
                    s.close()
                    self.errors += 1
            while open_ and time.monotonic() - open_[0][0] > 0.05:
                open_.popleft()[1].close()
            time.sleep(0.002)
        for _, s in open_:
            s.close()


class Flood(threading.Thread):
    """One connection: preamble, TLS, then PINGs without ever reading."""

    def __init__(self, port, mib, stop):
        super().__init__(daemon=True)
        self.port, self.mib, self.stop = port, mib, stop
        self.sent, self.outcome = 0, "not started"

    def run(self):
        try:
            p = cp.Peer.connect("127.0.0.1", self.port, source="127.0.0.2")
            p.handshake()
        except (OSError, cp.Closed) as e:
            self.outcome = "no TLS: %s" % e
            return
        chunk = cp.ping_frame() * (1 << 16)
        p.settimeout(3)
        self.outcome = "flooding"
        while self.sent < self.mib and not self.stop.is_set():
            try:
                p.send_raw(chunk)
                self.sent += 1
                if self.sent == self.mib:
                    self.outcome = "sent all"
            except socket.timeout:
                self.outcome = "stalled: the client stopped reading"
                break
            except (OSError, ssl.SSLError) as e:
                self.outcome = "closed by the client (%s)" % e.__class__.__name__
                break
        self.stop.wait()  # hold the connection to the end
        p.close()


def main():
    ap = argparse.ArgumentParser(description="one cc-client under attack; figures, not a test")
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=int, default=1000, help="TCP connect+close per second")
    ap.add_argument("--silent", type=int, default=300, help="silent connections held open")
    ap.add_argument("--flood-mib", type=int, default=256, help="PING flood size (0: none)")
    ap.add_argument("--license-delay", type=float, default=0.05, help="seconds the licence server takes")
    a = ap.parse_args()
    a.seconds = min(a.seconds, 120)
    binc, bins = os.path.join(a.build, "bin", "cc-client"), os.path.join(a.build, "bin", "cc-console")
    d = tempfile.mkdtemp(prefix="cc-load.")
    procs = []
    try:
        subprocess.run([os.path.join(SRC, "test", "fixtures", "certs.sh"), d + "/certs"], check=True,
                       stdout=subprocess.DEVNULL)
        with open(d + "/psk", "w") as f:
            f.write("load-0123456789abcdef-secret\n")
        procs.append(subprocess.Popen(
            ["/usr/bin/python3", os.path.join(SRC, "test", "hostile", "attack.py"), "license-server",
             "--port-file", d + "/ls.port", "--count-file", d + "/ls.count", "--delay", str(a.license_delay),
             "--lifetime", str(a.seconds + 60), "--owner", str(os.getpid())]))
        if not wait_file(d + "/ls.port", 5):
            sys.exit("load.py: the licence server did not start")
        lport = int(open(d + "/ls.port").read())
        cl_out = open(d + "/client.out", "w")
        client = subprocess.Popen(
            [binc, "--listen", "127.0.0.1:0", "--json", "--cert", d + "/certs/client.pem", "--key",
             d + "/certs/client.key", "--auth", "psk", "--psk-file", d + "/psk", "--license-url",
             "http://127.0.0.1:%d/GetLicenseDetails.aspx" % lport], stdout=cl_out, stderr=subprocess.DEVNULL)
        procs.append(client)
        port = None
        for _ in range(100):
            with open(d + "/client.out") as f:
                line = f.readline()
            if '"listening"' in line:
                port = int(json.loads(line)["address"].rsplit(":", 1)[1])
                break
            time.sleep(0.05)
        if not port:
            sys.exit("load.py: cc-client did not start")

        sampler = cp.Sampler(client.pid, interval=0.02)
        sampler.start()
        stop = threading.Event()
        # The flood first, so that it has its connection before the silent ones fill up a slot table.
        flood = Flood(port, a.flood_mib, stop) if a.flood_mib else None
        if flood:
            flood.start()
            for _ in range(100):
                if flood.outcome != "not started":
                    break
                time.sleep(0.05)
        silent, silent_errors = [], 0
        for src in cp.sources(a.silent, first_net=60):
            try:
                silent.append(cp.Peer.connect("127.0.0.1", port, source=src, timeout=3))
            except OSError:
                silent_errors += 1
        conn = Connector(port, a.rate, stop)
        conn.start()

        times, fails, codes = [], 0, collections.Counter()
        t_end = time.monotonic() + a.seconds
        while time.monotonic() < t_end:
            r = subprocess.run([bins, "127.0.0.1:%d" % port, "--ca", d + "/certs/ca.pem", "--auth", "psk",
                                "--psk-file", d + "/psk", "--timeout", "30000", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
            est = None
            for line in r.stdout.decode("utf-8", "replace").splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "established":
                    est = ev["ms"]
                if ev.get("event") == "error":
                    codes[ev.get("code")] += 1
            if r.returncode == 0 and est is not None:
                times.append(est)
            else:
                fails += 1
        stop.set()
        conn.join(5)
        if flood:
            flood.join(5)
        open_silent = 0
        for p in silent:
            try:
                p.raw.settimeout(0)
                b = p.raw.recv(64)
                open_silent += 1 if b else 0
            except BlockingIOError:
                open_silent += 1
            except OSError:
                pass
            p.close()
        sampler.stop()
        lic = int(open(d + "/ls.count").read() or 0)

        print("load: one cc-client on loopback for %.0f s: %d connect+close/s, %d silent connections, "
              "a PING flood of at most %d MiB, good psk consoles one after another" %
              (a.seconds, a.rate, a.silent, a.flood_mib))
        n = len(times)
        if n:
            q = sorted(times)
            p99 = q[min(n - 1, int(round(0.99 * (n - 1))))]
            print("  good consoles: %d served, %d failed; time to established p50 %.1f ms, p99 %.1f ms, max %.1f ms" %
                  (n, fails, statistics.median(q), p99, q[-1]))
        else:
            print("  good consoles: none served, %d failed" % fails)
        if codes:
            print("  good consoles' errors: %s" % ", ".join("%s x%d" % kv for kv in codes.most_common()))
        print("  cc-client: peak RSS %.1f MiB (from %.1f MiB), peak threads %d" %
              (max(sampler.rss_peak, sampler.hwm_end) / 1024, sampler.rss0 / 1024, sampler.threads_peak))
        print("  connect+close: %d done, %d failed to connect; licence requests to the server: %d" %
              (conn.done, conn.errors, lic))
        print("  silent: %d opened (%d failed), %d still open at the end" % (len(silent), silent_errors, open_silent))
        if flood:
            print("  PING flood: %d MiB sent, %s" % (flood.sent, flood.outcome))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
