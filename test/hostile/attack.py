#!/usr/bin/python3
# attack.py -- the attacks of test/test-hostile.sh and bench/load.py, one subcommand
# each, built on ccpeer.py; each prints its measurements as "key value" lines.
#
# Usage: /usr/bin/python3 test/hostile/attack.py SUBCOMMAND [options]   (--help per subcommand)
# Loopback only; every loop is bounded in count and every wait has a deadline.
# A command given with --during (or --run) is a shell command run while the attack
# is in full swing ("{port}" in it becomes the port attacked or listened on); its
# exit status and duration are reported as during_rc / during_s.

import argparse
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ccpeer as cp  # noqa: E402


def out(key, value):
    print("%s %s" % (key, value), flush=True)


printable = cp.printable


class During(threading.Thread):
    """Runs the --during command once, in the background, timing it."""

    def __init__(self, cmd, port, timeout=90):
        super().__init__(daemon=True)
        self.cmd, self.port, self.timeout = cmd, port, timeout
        self.rc, self.secs = None, None

    def run(self):
        t0 = time.monotonic()
        try:
            self.rc = subprocess.run(self.cmd.replace("{port}", str(self.port)), shell=True,
                                     timeout=self.timeout).returncode
        except subprocess.TimeoutExpired:
            self.rc = 124
        self.secs = time.monotonic() - t0

    def report(self):
        if self.is_alive():
            self.join(self.timeout + 5)
        out("during_rc", self.rc)
        out("during_s", "%.2f" % (self.secs or 0))


# ---- ping-flood: PINGs from a peer that never sent HELLO and never reads ----

def cmd_ping_flood(a):
    p = cp.Peer.connect("127.0.0.1", a.port, source=a.source)
    out("tls", p.handshake())
    s = cp.Sampler(a.pid)
    s.start()
    chunk = cp.ping_frame() * (1 << 16)  # 1 MiB of 16-byte PING frames
    during = During(a.during, a.port) if a.during else None
    p.settimeout(a.stall)
    sent, outcome, t0 = 0, "completed", time.monotonic()
    for i in range(a.mib):
        if during and i == max(1, a.mib // 8):
            during.start()
        try:
            p.send_raw(chunk)
        except socket.timeout:
            outcome = "stalled (the client stopped reading)"
            break
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            outcome = "closed by the client (%s)" % e.__class__.__name__
            break
        sent += 1
        if time.monotonic() - t0 > a.max_seconds:
            outcome = "time limit"
            break
    secs = time.monotonic() - t0
    if during and not during.is_alive() and during.rc is None:
        during.start()  # the flood ended before it was due
    time.sleep(a.settle)  # what is still in the socket buffers gets processed
    if during:
        during.join(95)
    s.stop()
    p.close()
    out("sent_mib", sent)
    out("seconds", "%.1f" % secs)
    out("outcome", outcome)
    out("rss_before_mib", "%.1f" % (s.rss0 / 1024))
    out("rss_peak_mib", "%.1f" % (max(s.rss_peak, s.hwm_end) / 1024))
    out("growth_mib", "%.1f" % (s.growth_kib() / 1024))
    out("threads_peak", s.threads_peak)
    if during:
        during.report()


# ---- window: an authenticated console that sends past its flow-control window ----

def cmd_window(a):
    """psk console (section 5); then DATA on one channel as fast as TCP takes it, never
    reading and never granting, so an echoing client pauses the channel and its window
    runs out (doc/PROTOCOL.md 10). Reports what the client did and its memory."""
    key = open(a.psk_file, "rb").read()
    if key.endswith(b"\n"):
        key = key[:-1]
    p = cp.Peer.connect("127.0.0.1", a.port)
    out("tls", p.handshake())
    got, why = p.psk_console(key)
    res = [cp.parse_auth_result(pl) for t, pl in got if t == cp.AUTH_RESULT]
    out("auth", cp.err_name(res[0]["code"]) if res else "none (%s)" % why)
    s = cp.Sampler(a.pid)
    s.start()
    chunk = b"".join(cp.frame(cp.DATA, b"w" * cp.DATA_MAX, channel=1) for _ in range(64))  # 1 MiB
    p.settimeout(a.stall)
    sent, outcome = 0, "completed"
    for _ in range(a.mib):
        try:
            p.send_raw(chunk)
        except socket.timeout:
            outcome = "stalled (the client stopped reading)"
            break
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            outcome = "closed by the client (%s)" % e.__class__.__name__
            break
        sent += 1
    time.sleep(a.settle)
    s.stop()
    p.close()
    out("sent_mib", sent)
    out("outcome", outcome)
    out("growth_mib", "%.1f" % (s.growth_kib() / 1024))


# ---- strangers: work done for peers that never said who they are ------------

def burst(port, srcs, preamble, errors, batch=50, linger=0.05):
    """Connects from each source in turn, `batch` connections open at a time; with
    `preamble` each sends the preamble and waits for the client's; each batch is
    closed after `linger` seconds (a client that needs longer than that to start
    work for a stranger is not hurt by this attack)."""
    for i in range(0, len(srcs), batch):
        peers = []
        for src in srcs[i:i + batch]:
            try:
                peers.append(cp.Peer.connect("127.0.0.1", port, source=src, timeout=5))
            except OSError:
                errors[0] += 1
        if preamble:
            for p in peers:
                try:
                    p.send_preamble()
                    p.read_preamble(5)
                except (OSError, cp.Closed):
                    pass
        time.sleep(linger)
        for p in peers:
            p.close()


def read_count(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def cmd_strangers(a):
    s = cp.Sampler(a.pid)
    s.start()
    srcs = cp.sources(a.connect_close + a.preamble_only + a.connect_close)
    errors = [0]
    before = read_count(a.count_file) if a.count_file else 0
    t0 = time.monotonic()
    burst(a.port, srcs[:a.connect_close], False, errors)
    burst(a.port, srcs[a.connect_close:a.connect_close + a.preamble_only], True, errors)
    out("burst_s", "%.2f" % (time.monotonic() - t0))
    time.sleep(a.settle)  # jobs started by the burst reach the server by now
    after = read_count(a.count_file) if a.count_file else 0
    threads_a = s.threads_peak
    if a.during:
        # the same again while a good console connects
        during = During(a.during, a.port)
        during.start()
        burst(a.port, srcs[a.connect_close + a.preamble_only:], False, errors)
        during.join(95)
        time.sleep(a.settle)
    s.stop()
    out("connect_errors", errors[0])
    out("license_requests", after - before)
    out("threads_before", s.threads0)
    out("threads_peak_burst", threads_a)
    out("threads_peak", s.threads_peak)
    if a.during:
        during.report()


# ---- silent: connections that hold a slot and say nothing ------------------

def still_open(peers):
    n = 0
    for p in peers:
        try:
            p.raw.settimeout(0)
            b = p.raw.recv(64)
            if b:
                n += 1  # the client's preamble: it is still talking to us
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def cmd_silent(a):
    peers, errors = [], 0
    s = cp.Sampler(a.pid) if a.pid else None
    if s:
        s.start()
    for src in cp.sources(a.count, first_net=40):
        try:
            peers.append(cp.Peer.connect("127.0.0.1", a.port, source=src, timeout=5))
        except OSError:
            errors += 1
    time.sleep(a.settle)  # the client has accepted them all by now
    out("opened", len(peers))
    out("connect_errors", errors)
    out("open_before", still_open(peers))
    if a.during:
        d = During(a.during, a.port)
        d.run()
        out("open_after", still_open(peers))
        d.report()
    else:
        time.sleep(a.hold)
    for p in peers:
        p.close()
    if s:
        s.stop()
        out("threads_peak", s.threads_peak)


# ---- hello: one peer, a chosen HELLO, what comes back -----------------------

def cmd_hello(a):
    p = cp.Peer.connect("127.0.0.1", a.port)
    p.handshake()
    mechs = [bytes.fromhex(m) for m in a.mech_hex]
    tok = bytes.fromhex(a.token_hex) if a.token_hex is not None else None
    # --guess: the HELLO announces that the token is the first mechanism's (CAP_GUESS), sent
    # before the client's choice; without it a token after the HELLO is simply the first token
    p.send_frame(cp.HELLO, cp.hello_payload(mechs, cp.CAP_GUESS if a.guess else 0))
    if tok is not None:
        p.send_frame(cp.AUTH_TOKEN, tok)
        got, why = p.frames_until({cp.CLOSE}, timeout=a.timeout)
    else:
        got, why = p.frames_until({cp.CLOSE, cp.HELLO}, timeout=a.timeout)
    p.close()
    out("reply", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or "(nothing)")
    out("stopped", why)
    close = [cp.parse_close(pl) for t, pl in got if t == cp.CLOSE]
    out("close_code", cp.err_name(close[0]["code"]) if close else "none")
    out("hello_from_client", int(any(t == cp.HELLO for t, _ in got)))
    lic = [cp.parse_license(pl) for t, pl in got if t == cp.LICENSE]
    out("license_detail", printable(lic[0]["detail"]) if lic else "(none)")


# ---- close: a peer that ends with a CLOSE of its own choosing --------------

def cmd_close(a):
    p = cp.Peer.connect("127.0.0.1", a.port)
    p.handshake()
    if a.hello:
        p.send_frame(cp.HELLO, cp.hello_payload([b"psk"]))
    p.send_frame(cp.CLOSE, cp.close_payload(a.code, bytes.fromhex(a.reason_hex)))
    got, why = p.frames_until(set(), timeout=a.timeout)
    p.close()
    out("reply", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or "(nothing)")
    out("stopped", why)


# ---- malicious-client: a managed machine that lies to the console -----------

def script_auth(p, token, log, license=True):
    """LICENSE granted (unless told not to), HELLO [nt], then AUTH_RESULT success
    carrying `token` as soon as the console's NEGOTIATE is in; reports what the
    console does next."""
    got, why = p.frames_until({cp.HELLO}, timeout=10)
    log("console_hello", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or why)
    if license:
        p.send_frame(cp.LICENSE, cp.license_payload())
    p.send_frame(cp.HELLO, cp.hello_payload([b"nt"]))
    got, why = p.frames_until({cp.AUTH_TOKEN}, timeout=10)
    neg = [pl for t, pl in got if t == cp.AUTH_TOKEN]
    log("negotiate", "ntlm type %s, %d bytes" % (cp.ntlm_type(neg[0]), len(neg[0])) if neg else why)
    p.send_frame(cp.AUTH_RESULT, cp.auth_result_payload(0, "WORKGROUP\\alice", token))
    got, why = p.frames_until({cp.CLOSE}, timeout=5)
    log("after", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or "(nothing)")
    log("after_stopped", why)
    log("authenticate_sent", int(any(t == cp.AUTH_TOKEN and cp.ntlm_type(pl) == 3 for t, pl in got)))


def script_license(p, detail, log):
    """LICENSE granted with a detail of the test's choosing (e.g. not UTF-8)."""
    got, why = p.frames_until({cp.HELLO}, timeout=10)
    p.send_frame(cp.LICENSE, cp.license_payload(detail=detail))
    p.send_frame(cp.HELLO, cp.hello_payload([b"nt"]))
    got, why = p.frames_until({cp.CLOSE, cp.AUTH_TOKEN}, timeout=5)
    log("after", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or "(nothing)")


def script_psk_bad_proof(p, log):
    """LICENSE granted, HELLO [psk], then AUTH_RESULT success whose psk proof is 32 random
    bytes: a client that does not know the key (or relays another connection's proof)."""
    got, why = p.frames_until({cp.AUTH_TOKEN}, timeout=10)
    log("console_first", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or why)
    hello = [cp.Reader(pl).u16() for t, pl in got if t == cp.HELLO]
    log("console_guess", int(bool(hello) and bool(hello[0] & cp.CAP_GUESS)))
    p.send_frame(cp.HELLO, cp.hello_payload([b"psk"]))
    p.send_frame(cp.LICENSE, cp.license_payload())
    p.send_frame(cp.AUTH_RESULT, cp.auth_result_payload(0, "psk:tester", os.urandom(32)))
    got, why = p.frames_until({cp.CLOSE}, timeout=5)
    log("after", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or "(nothing)")


def script_consent(p, log, steps):
    """A client that asks its user (doc/PROTOCOL.md 4.8), as `steps` says: HELLO [psk] after the
    console's guess, then each of "license", "wait:MS", "token", "close:CODE:REASON" in order;
    then reports what the console sends until its CLOSE."""
    got, why = p.frames_until({cp.AUTH_TOKEN}, timeout=10)
    p.send_frame(cp.HELLO, cp.hello_payload([b"psk"]))
    for s in steps:
        kind, _, arg = s.partition(":")
        if kind == "license":
            p.send_frame(cp.LICENSE, cp.license_payload())
        elif kind == "wait":
            p.send_frame(cp.CONSENT_WAIT, cp.consent_wait_payload(int(arg)))
        elif kind == "token":
            p.send_frame(cp.AUTH_TOKEN, b"\x00" * 32)
        elif kind == "close":
            code, _, reason = arg.partition(":")
            p.send_frame(cp.CLOSE, cp.close_payload(int(code), reason))
    got, why = p.frames_until({cp.CLOSE}, timeout=15)
    log("after", " | ".join(printable(cp.describe(t, pl)) for t, pl in got) or "(nothing)")


SCRIPTS = {
    "consent-refused": lambda p, log: script_consent(p, log, ["license", "wait:2000", "close:-80:not now"]),
    "consent-before-license": lambda p, log: script_consent(p, log, ["wait:2000"]),
    "consent-twice": lambda p, log: script_consent(p, log, ["license", "wait:2000", "wait:2000"]),
    "consent-zero": lambda p, log: script_consent(p, log, ["license", "wait:0"]),
    "consent-then-token": lambda p, log: script_consent(p, log, ["license", "wait:2000", "token"]),
    "consent-silent": lambda p, log: script_consent(p, log, ["license", "wait:3000"]),
    "psk-bad-proof": script_psk_bad_proof,
    "fake-success": lambda p, log: script_auth(p, cp.ntlm_challenge(), log),
    "empty-success": lambda p, log: script_auth(p, b"", log),
    "success-before-license": lambda p, log: script_auth(p, b"", log, license=False),
    "license-bad-utf8": lambda p, log: script_license(p, b"granted \xff\xfe\xc3\x28", log),
    "license-nul": lambda p, log: script_license(p, b"granted\x00hidden", log),
}


def cmd_malicious_client(a):
    mc = cp.MaliciousClient(a.cert, a.key)
    d = During(a.run, mc.port)
    d.start()
    lines = []
    try:
        p = mc.accept(timeout=20)
        SCRIPTS[a.script](p, lambda k, v: lines.append((k, v)))
        p.close()
    except (OSError, cp.Closed) as e:
        lines.append(("error", printable(str(e))))
    mc.close()
    d.join(95)
    for k, v in lines:
        out(k, v)
    d.report()


# ---- license-server: a management server that counts what it is asked -------

def cmd_license_server(a):
    page = open(a.page, "rb").read() if a.page else (
        b"<LicenseDetails><LicenseCount>25</LicenseCount><LicensesInUse>7</LicensesInUse></LicenseDetails>\n")
    lock, count = threading.Lock(), [0]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                count[0] += 1
                tmp = a.count_file + ".tmp"
                with open(tmp, "w") as f:
                    f.write("%d\n" % count[0])
                os.replace(tmp, a.count_file)
            time.sleep(a.delay)  # a management server takes its time
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    srv = S(("127.0.0.1", 0), H)
    with open(a.count_file, "w") as f:
        f.write("0\n")
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(a.port_file + ".tmp", a.port_file)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    deadline = time.monotonic() + a.lifetime
    while time.monotonic() < deadline:
        if a.owner:
            try:
                os.kill(a.owner, 0)
            except OSError:
                break
        time.sleep(0.2)
    srv.shutdown()


# ---- json-lines: is every line of a file one valid JSON object? -------------

def cmd_json_lines(a):
    bad = []
    with open(a.file, "rb") as f:
        for n, line in enumerate(f, 1):
            try:
                obj = json.loads(line.decode("utf-8"))
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                bad.append("line %d: %s: %s" % (n, e.__class__.__name__, printable(line.rstrip(b"\n"))[:120]))
    out("invalid_lines", len(bad))
    for b in bad[:3]:
        out("invalid", b)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def target(p, pid=True):
        p.add_argument("--port", type=int, required=True)
        if pid:
            p.add_argument("--pid", type=int, required=True, help="the cc-client to watch in /proc")
        p.add_argument("--during", help="shell command to run while the attack goes on")

    p = sub.add_parser("ping-flood", help="PINGs without HELLO, never reading")
    target(p)
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--source")
    p.add_argument("--stall", type=float, default=3.0, help="seconds a write may block before we call it back-pressure")
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.set_defaults(fn=cmd_ping_flood)

    p = sub.add_parser("window", help="psk console sending DATA past its window, never reading")
    target(p)
    p.add_argument("--psk-file", required=True)
    p.add_argument("--mib", type=int, default=64)
    p.add_argument("--stall", type=float, default=5.0)
    p.add_argument("--settle", type=float, default=1.0)
    p.set_defaults(fn=cmd_window)

    p = sub.add_parser("strangers", help="TCP connect+close and preamble-only connections")
    target(p)
    p.add_argument("--connect-close", type=int, default=300)
    p.add_argument("--preamble-only", type=int, default=100)
    p.add_argument("--count-file", help="the licence server's request counter")
    p.add_argument("--settle", type=float, default=3.0)
    p.set_defaults(fn=cmd_strangers)

    p = sub.add_parser("silent", help="connections that never send a byte")
    target(p, pid=False)
    p.add_argument("--pid", type=int)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--settle", type=float, default=1.5)
    p.add_argument("--hold", type=float, default=2.0)
    p.set_defaults(fn=cmd_silent)

    p = sub.add_parser("hello", help="a HELLO with chosen mechanism names (hex)")
    target(p, pid=False)
    p.add_argument("--mech-hex", action="append", required=True)
    p.add_argument("--token-hex", help="an AUTH_TOKEN right after the HELLO; then read until CLOSE or the timeout")
    p.add_argument("--guess", action="store_true", help="the HELLO announces the token as a guess (CAP_GUESS)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(fn=cmd_hello)

    p = sub.add_parser("close", help="a CLOSE with a chosen code and reason (hex)")
    target(p, pid=False)
    p.add_argument("--code", type=int, default=-1)
    p.add_argument("--reason-hex", default="")
    p.add_argument("--hello", action="store_true", help="send HELLO [psk] first")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(fn=cmd_close)

    p = sub.add_parser("malicious-client", help="accept one real console and lie to it")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--script", choices=sorted(SCRIPTS), required=True)
    p.add_argument("--run", required=True, help="the console command; {port} is where we listen")
    p.set_defaults(fn=cmd_malicious_client)

    p = sub.add_parser("license-server", help="an HTTP licence server counting its requests")
    p.add_argument("--port-file", required=True)
    p.add_argument("--count-file", required=True)
    p.add_argument("--page")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--lifetime", type=float, default=600.0)
    p.add_argument("--owner", type=int, help="stop once this process is gone")
    p.set_defaults(fn=cmd_license_server)

    p = sub.add_parser("json-lines", help="count the lines of FILE that are not one JSON object")
    p.add_argument("file")
    p.set_defaults(fn=cmd_json_lines)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
