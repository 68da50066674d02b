#!/usr/bin/python3
# tlsprobe.py -- the baseline of bench/flights.sh: a bare TLS 1.3 handshake and its first
# echo, with the same certificate, through the same delay relay.
#   tlsprobe.py server CERT KEY        an echo server; prints its port
#   tlsprobe.py client PORT CA RUNS    RUNS connections; prints "handshake_ms echo_ms" per run
# Times start once TCP is connected (as the Carbon Copy figures do).
import socket
import ssl
import sys
import threading
import time


def server(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.num_tickets = 0  # like the library: no session tickets
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print(ls.getsockname()[1], flush=True)
    ls.settimeout(600)

    def one(c):
        try:
            c.settimeout(10)
            s = ctx.wrap_socket(c, server_side=True)
            while True:
                d = s.recv(4096)
                if not d:
                    break
                s.sendall(d)
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    while True:
        try:
            c, _ = ls.accept()
        except OSError:
            return
        threading.Thread(target=one, args=(c,), daemon=True).start()


def client(port, ca, runs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    for _ in range(runs):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        t1 = time.monotonic()
        s.sendall(b"x")
        s.recv(1)
        t2 = time.monotonic()
        print("%.1f %.1f" % ((t1 - t0) * 1000, (t2 - t0) * 1000), flush=True)
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], sys.argv[3])
    else:
        client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
