#!/usr/bin/python3
"""client.py -- a small Carbon Copy client in Python on the carboncopy package:
serves one console on HOST:PORT with the built-in "nt" mechanism, answers the
licence job itself (the figures of --license, through the job API: no licence
server) or fetches --license-url, echoes the console's data, and exits with the
session's outcome. Exit codes are cc-client's (examples/common.c).

usage: client.py --cert FILE --key FILE --accounts SMBPASSWD
                 (--license COUNT:IN_USE | --license-url URL)
                 [--listen HOST:PORT] [--echo] [--timeout MS] [--accept-timeout S]
"""
import argparse
import select
import socket
import sys

import carboncopy as cc


def parse_listen(text):
    """'host:port' or '[v6]:port' -> (host, port); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(text)
    return host, int(port)


def parse_figures(text):
    """'COUNT:IN_USE' -> (count, in_use)."""
    count, sep, in_use = text.partition(":")
    if not sep or not count.isdigit() or not in_use.isdigit() or int(count) >= 1 << 32 or int(in_use) >= 1 << 32:
        raise ValueError(text)
    return int(count), int(in_use)


def accept_one(host, port, deadline_s):
    """Listens, says where on stdout (a test reads the port from it), and
    returns the first accepted socket, or None when none came in time."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(addr)
        srv.listen(1)
        name = srv.getsockname()
        print("listening on %s:%d" % (name[0] if family == socket.AF_INET else "[%s]" % name[0], name[1]), flush=True)
        if not select.select([srv], [], [], deadline_s)[0]:
            return None
        conn, peer = srv.accept()
        print("accepted %s:%d" % peer[:2], flush=True)
        return conn


class Client(cc.Session):
    """Prints the steps, answers the licence job with fixed figures, and
    echoes data (stops reading while the echo cannot leave as fast)."""

    def __init__(self, ctx, figures, echo):
        super().__init__(ctx)
        self.figures = figures
        self.echo = echo
        self.received = 0

    def answer_job(self, job):
        if self.figures is None or job.type() != cc.CC_JOB_LICENSE:
            return False  # cc_job_run on a worker thread: the real fetch
        job.license_set_figures(*self.figures)
        return True

    def on_event(self, ev):
        if ev.type == cc.CC_EVENT_LICENSE:
            print("licence %s: %d of %d in use%s" % ("granted" if ev.granted else "denied", ev.license_in_use,
                                                     ev.license_count, "" if ev.granted else " (%s)" % ev.text),
                  flush=True)
        elif ev.type == cc.CC_EVENT_AUTH:
            if ev.code == 0:
                print("authenticated by %s as %s" % (ev.mechanism, ev.text), flush=True)
            else:  # the cause, which the console is not told (cc_context_set_auth_disclosure)
                print("refused by %s: %s: %s" % (ev.mechanism, cc.err_name(ev.code), ev.text), flush=True)
        elif ev.type == cc.CC_EVENT_STATE and ev.state == cc.CC_STATE_ESTABLISHED:
            print("established: identity %s, mechanism %s, %s %s"
                  % (self.identity(), self.mechanism(), self.tls_version(), self.tls_cipher()), flush=True)
        elif ev.type == cc.CC_EVENT_DATA:
            self.received += len(ev.data)
            if self.echo:
                try:
                    if self.send(ev.channel, ev.data) == cc.CC_SEND_HIGH_WATER:
                        self.pause_reading(1)
                except cc.CCError as e:
                    self.close(e.code, "echo buffer overflow")
        elif ev.type == cc.CC_EVENT_SEND_READY:
            self.pause_reading(0)
        elif ev.type == cc.CC_EVENT_CLOSED:
            print("closed: %s, reason \"%s\", %d bytes received%s"
                  % (cc.err_name(ev.code) if ev.code else "orderly", ev.text, self.received,
                     " and echoed" if self.echo else ""), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="client.py", description="Carbon Copy client on the Python package")
    ap.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="default 127.0.0.1:0 (a free port)")
    ap.add_argument("--cert", required=True, metavar="FILE")
    ap.add_argument("--key", required=True, metavar="FILE")
    ap.add_argument("--accounts", required=True, metavar="SMBPASSWD", help="the nt account store")
    lic = ap.add_mutually_exclusive_group(required=True)
    lic.add_argument("--license", metavar="COUNT:IN_USE", help="answer the licence job with these figures")
    lic.add_argument("--license-url", metavar="URL", help="fetch the licence page (cc_job_run on a thread)")
    ap.add_argument("--echo", action="store_true", help="send back the data the console sends")
    ap.add_argument("--timeout", type=int, metavar="MS", help="handshake deadline")
    ap.add_argument("--accept-timeout", type=float, default=30.0, metavar="S",
                    help="give up when no console connects in S seconds (default 30)")
    a = ap.parse_args(argv)  # usage errors exit 2, as cc-client's
    try:
        host, port = parse_listen(a.listen)
        figures = parse_figures(a.license) if a.license else None
    except ValueError as e:
        print('client.py: cannot parse "%s" (--listen HOST:PORT, --license COUNT:IN_USE)' % e, file=sys.stderr)
        return cc.EX_USAGE
    if (a.timeout is not None and a.timeout <= 0) or a.accept_timeout <= 0:
        print("client.py: --timeout and --accept-timeout take values > 0", file=sys.stderr)
        return cc.EX_USAGE

    ctx = cc.Context(cc.CC_ROLE_CLIENT)
    try:
        step = "--cert/--key"
        try:
            ctx.set_certificate(a.cert, a.key)
            if a.license_url:
                step = "--license-url"
                ctx.set_license_url(a.license_url)
            if a.timeout:
                step = "--timeout"
                ctx.set_timeout(cc.CC_TIMEOUT_HANDSHAKE, a.timeout)
            step = "--accounts"
            ctx.add_builtin_authenticator("nt")
            ctx.set_auth_option("nt", "accounts", a.accounts)
            s = Client(ctx, figures, a.echo)
        except cc.CCError as e:
            print("client.py: %s: %s: %s" % (step, e.name, e.detail or e.message), file=sys.stderr)
            return cc.EX_TLS if step == "--cert/--key" else cc.EX_USAGE
        try:
            conn = accept_one(host, port, a.accept_timeout)
        except OSError as e:
            print("client.py: cannot listen on %s: %s" % (a.listen, e), file=sys.stderr)
            return cc.EX_CONNECT
        if conn is None:
            print("client.py: no console connected within %g s" % a.accept_timeout, file=sys.stderr)
            return cc.EX_TIMEOUT
        try:
            s.accept_fd(conn.detach())  # the session owns the socket now
            s.run()
        except cc.CCError as e:
            print("client.py: %s: %s" % (e.name, e.detail or e.message), file=sys.stderr)
            return cc.exit_code(e.code)
        return cc.EX_OK
    finally:
        ctx.free()


if __name__ == "__main__":
    sys.exit(main())
