#!/usr/bin/python3
# relay.py -- a delay relay for the round-trip benchmark (bench/flights.sh): listens on
# 127.0.0.1, forwards each accepted connection to TARGET and delays every chunk, in each
# direction, by DELAY ms (so a round trip of data costs 2 x DELAY). TCP's own handshake is
# not delayed: the kernel completes it on the listening socket before the relay sees the
# connection, and the connection to TARGET is loopback. Order and end of stream are kept
# (a FIN is passed on DELAY ms after the data before it). Standard library only; every
# connection has a lifetime bound. Prints its port on the first line of stdout.
#
# usage: relay.py TARGET_PORT DELAY_MS [--up-ms MS] [--lifetime S] [--log FILE]
#   --up-ms: a different delay for console -> client (default DELAY_MS)
import argparse
import heapq
import socket
import threading
import time


LOG = None
LOG_LOCK = threading.Lock()


def log(conn, direction, n):
    if LOG:
        with LOG_LOCK:
            LOG.write("%d %s %d %.3f\n" % (conn, direction, n, time.monotonic() * 1000))
            LOG.flush()


def pump(src, dst, delay_s, deadline, conn=0, direction="?"):
    """Reads src until end of stream; each chunk is written to dst delay_s after it arrived."""
    q, cv, done = [], threading.Condition(), [False]

    def writer():
        seq = 0
        while True:
            with cv:
                while not q and not done[0]:
                    cv.wait(0.5)
                    if time.monotonic() > deadline:
                        return
                if not q and done[0]:
                    break
                due, seq, data = q[0]
                left = due - time.monotonic()
                if left > 0:
                    cv.wait(left)
                    continue
                heapq.heappop(q)
            if data is None:
                break
            try:
                dst.sendall(data)
            except OSError:
                return
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    seq = 0
    src.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            data = src.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            data = b""
        seq += 1
        log(conn, direction, len(data))
        with cv:
            heapq.heappush(q, (time.monotonic() + delay_s, seq, data or None))
            cv.notify()
        if not data:
            break
    with cv:
        done[0] = True
        cv.notify()
    t.join(delay_s + 5)


def serve(c, target, down_s, up_s, lifetime, conn):
    try:
        u = socket.create_connection(("127.0.0.1", target), timeout=5)
    except OSError:
        c.close()
        return
    for s in (c, u):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + lifetime
    a = threading.Thread(target=pump, args=(c, u, up_s, deadline, conn, "C"), daemon=True)
    b = threading.Thread(target=pump, args=(u, c, down_s, deadline, conn, "S"), daemon=True)
    a.start()
    b.start()
    a.join(lifetime + 10)
    b.join(lifetime + 10)
    c.close()
    u.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", type=int)
    ap.add_argument("delay_ms", type=float)
    ap.add_argument("--up-ms", type=float)
    ap.add_argument("--lifetime", type=float, default=60.0)
    ap.add_argument("--run-for", type=float, default=600.0, help="the relay itself ends after this")
    ap.add_argument("--log", help="one line per chunk read: CONN C|S BYTES MONOTONIC_MS (C: from the connecting side)")
    a = ap.parse_args()
    global LOG
    if a.log:
        LOG = open(a.log, "a")
    up = a.delay_ms if a.up_ms is None else a.up_ms
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(ls.getsockname()[1], flush=True)
    end = time.monotonic() + a.run_for
    ls.settimeout(1.0)
    conn = 0
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        conn += 1
        threading.Thread(target=serve, args=(c, a.target, a.delay_ms / 1000.0, up / 1000.0, a.lifetime, conn),
                         daemon=True).start()


if __name__ == "__main__":
    main()
