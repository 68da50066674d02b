#!/usr/bin/python3
"""console.py -- a small Carbon Copy console in Python on the generated
binding: connects to a cc-client, authenticates with the built-in "nt"
mechanism, prints the licence verdict and the identity, sends a few KB on
channel 1 and checks the echo. Exit codes are cc-console's (examples/common.c).

usage: console.py HOST[:PORT] (--ca FILE | --pin SHA256HEX) --user NAME
                  [--domain DOMAIN] --password-file FILE [--size BYTES] [--timeout MS]
"""
import argparse
import os
import sys

import carboncopy as cc

CHUNK = 16384


def split_host_port(text):
    """'host', 'host:port', '[v6]:port' -> (host, port); port 0 means the default."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(text)
        port = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""  # a name, or a bare IPv6 address
    if not host or (port and not (port.isdigit() and 0 < int(port) <= 65535)):
        raise ValueError(text)
    return host, int(port) if port else 0


def read_secret(path):
    """The file's bytes as a bytearray (wipeable), one trailing newline stripped."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(4097)
        n = f.readinto(buf)
    if n > 4096:
        raise ValueError("%s: too large for a secret (more than 4096 bytes)" % path)
    del buf[n:]
    for end in (b"\n", b"\r"):
        if buf.endswith(end):
            del buf[-1:]
    return buf


class Console(cc.Session):
    """Prints the steps; on establishment sends the payload (flow-controlled
    by CC_SEND_HIGH_WATER / CC_EVENT_SEND_READY) and compares the echo."""

    def __init__(self, ctx, payload):
        super().__init__(ctx)
        self.payload = payload
        self.sent = 0
        self.echo = bytearray()
        self.blocked = False
        self.mismatch = False

    def feed(self):
        while self.sent < len(self.payload) and not self.blocked:
            chunk = self.payload[self.sent:self.sent + CHUNK]
            try:
                r = self.send(1, chunk)
            except cc.CCError as e:
                if e.code != cc.CC_ERR_AGAIN:
                    raise
                self.blocked = True
                return
            self.sent += len(chunk)
            if r == cc.CC_SEND_HIGH_WATER:
                self.blocked = True

    def on_event(self, ev):
        if ev.type == cc.CC_EVENT_LICENSE:
            verdict = "granted" if ev.granted else "denied"
            print("licence %s: %d of %d in use%s" % (verdict, ev.license_in_use, ev.license_count,
                                                     "" if ev.granted else " (%s)" % ev.text), flush=True)
        elif ev.type == cc.CC_EVENT_AUTH and ev.code == 0:
            print("authenticated by %s as %s" % (ev.mechanism, ev.text), flush=True)
        elif ev.type == cc.CC_EVENT_STATE and ev.state == cc.CC_STATE_ESTABLISHED:
            print("established: identity %s, mechanism %s, %s %s"
                  % (self.identity(), self.mechanism(), self.tls_version(), self.tls_cipher()), flush=True)
            self.feed()
            if not self.payload:
                self.close(0, "done")
        elif ev.type == cc.CC_EVENT_SEND_READY:
            self.blocked = False
            self.feed()
        elif ev.type == cc.CC_EVENT_DATA and ev.channel == 1:
            self.echo += ev.data
            if self.echo != self.payload[:len(self.echo)]:
                self.mismatch = True
                self.close(cc.CC_ERR_PROTOCOL, "echo mismatch")
            elif len(self.echo) == len(self.payload):
                self.close(0, "done")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="console.py", description="Carbon Copy console on the Python binding")
    ap.add_argument("target", metavar="HOST[:PORT]")
    trust = ap.add_mutually_exclusive_group()
    trust.add_argument("--ca", metavar="FILE", help="trust client certificates issued by the CAs in FILE")
    trust.add_argument("--pin", metavar="SHA256HEX", help="trust exactly this certificate fingerprint")
    ap.add_argument("--user", required=True)
    ap.add_argument("--domain")
    ap.add_argument("--password-file", required=True, metavar="FILE")
    ap.add_argument("--size", type=int, default=4096, help="bytes to send on channel 1 (default 4096)")
    ap.add_argument("--timeout", type=int, metavar="MS", help="handshake deadline")
    a = ap.parse_args(argv)  # usage errors exit 2, as cc-console's
    try:
        host, port = split_host_port(a.target)
    except ValueError:
        print('console.py: cannot parse "%s" as HOST[:PORT]' % a.target, file=sys.stderr)
        return cc.EX_USAGE
    if not 0 <= a.size <= 64 << 20 or (a.timeout is not None and a.timeout <= 0):
        print("console.py: --size takes 0..64 MiB, --timeout milliseconds > 0", file=sys.stderr)
        return cc.EX_USAGE
    try:
        password = read_secret(a.password_file)
    except (OSError, ValueError) as e:
        print("console.py: %s" % e, file=sys.stderr)
        return cc.EX_USAGE

    ctx = cc.Context(cc.CC_ROLE_CONSOLE)
    try:
        step = "configuration"
        try:
            if a.ca:
                step = "--ca"
                ctx.set_ca_file(a.ca)
            if a.pin:
                step = "--pin"
                ctx.set_pin_sha256(a.pin)
            if a.timeout:
                step = "--timeout"
                ctx.set_timeout(cc.CC_TIMEOUT_HANDSHAKE, a.timeout)
            step = "nt"
            ctx.add_builtin_authenticator("nt")
            s = Console(ctx, os.urandom(a.size))
            s.set_credentials(a.user, a.domain, password)
        except cc.CCError as e:
            print("console.py: %s: %s: %s" % (step, e.name, e.detail or e.message), file=sys.stderr)
            return cc.EX_TLS if step == "--ca" else cc.EX_USAGE if step.startswith("--") else cc.exit_code(e.code)
        finally:
            password[:] = bytes(len(password))
        try:
            s.connect(host, port)
            s.run()
        except cc.CCError as e:
            print("console.py: %s: %s" % (e.name, e.detail or e.message), file=sys.stderr)
            return cc.exit_code(e.code)
        if s.mismatch or s.echo != s.payload:
            print("console.py: the echo differs from the data sent", file=sys.stderr)
            return cc.EX_PROTOCOL
        print("sent %d bytes, echo verified" % len(s.payload), flush=True)
        return cc.EX_OK
    finally:
        ctx.free()


if __name__ == "__main__":
    sys.exit(main())
