#!/usr/bin/python3
# console.py -- an interop Carbon Copy console whose authentication engines are written by
# others: python3-ntlm-auth for "nt" and python3-gssapi (MIT krb5) for "kerberos". The wire
# (preamble, TLS, frames) is test/hostile/ccpeer.py's, itself written from doc/PROTOCOL.md
# alone; the TLS channel binding (RFC 9266 tls-exporter) is derived here from the TLS 1.3
# exporter secret in Python's key log (RFC 8446 7.5), so nothing comes from libcarboncopy.
#
#   console.py HOST PORT --mech nt --user alice --domain WORKGROUP --password-file F [--echo TEXT]
#   console.py HOST PORT --mech kerberos --service host/127.0.0.1@CC.TEST   (ticket in KRB5CCNAME)
#   --binding ours|other|none   the binding of this connection (default), of another
#                               connection to the same client, or none at all
#   --ca FILE                   verify the client's certificate against FILE
#
# One JSON object per line on stdout; exit 0 established (and echoed), 6 authentication
# refused, 1 anything else. Every wait has a deadline (--timeout, default 15 s).
#
# The flight order lives in exchange() alone: protocol version 1 waits for the client's
# HELLO before the first token; version 2 (ccpeer.PREAMBLE announcing it) sends the first
# token right behind a HELLO that says so (capability CAP_GUESS). ccpeer's Peer.handshake()
# does the preamble and TLS for either.

import argparse
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
import ccpeer as cp  # noqa: E402

EXIT_OK, EXIT_FAIL, EXIT_AUTH = 0, 1, 6
AUTH_CODES = range(-79, -59)  # CC_ERR_AUTH (-60) .. CC_ERR_AUTH_*, as cc-console counts them
# The numbers that travel in AUTH_RESULT and CLOSE (include/carboncopy.h), beyond ccpeer's list.
NAMES = dict(cp.ERR)
NAMES.update({-65: "CC_ERR_AUTH_REPLAY", -66: "CC_ERR_AUTH_CHANNEL_BINDING",
                        -68: "CC_ERR_AUTH_POLICY", -69: "CC_ERR_AUTH_NO_CREDENTIALS",
                        -70: "CC_ERR_AUTH_EXPIRED", -71: "CC_ERR_AUTH_KDC_UNREACHABLE",
                        -72: "CC_ERR_AUTH_CLOCK_SKEW", -73: "CC_ERR_AUTH_KEYTAB"})


def out(event, **kw):
    kw = dict({"event": event}, **kw)
    print(json.dumps(kw, sort_keys=False), flush=True)


# ---- the TLS channel binding, independently: RFC 9266 over RFC 8446 7.5 -----------------

_keylogs = []  # key-log file of each TLS context ccpeer made, in order
_ca = None


def _install_tls_hooks():
    """Every client context ccpeer makes writes a key log of its own (so the exporter
    secret of that connection can be read back), speaks TLS 1.3 only (the exporter below
    is TLS 1.3's) and, with --ca, verifies the client's certificate."""
    made = cp._no_verify_client_ctx

    def ctx_with_keylog():
        c = made()
        c.minimum_version = ssl.TLSVersion.TLSv1_3
        if _ca:
            c.load_verify_locations(_ca)
            c.verify_mode = ssl.CERT_REQUIRED
        fd, path = tempfile.mkstemp(prefix="cc-interop-keylog.")
        os.close(fd)
        _keylogs.append(path)
        c.keylog_filename = path
        return c

    cp._no_verify_client_ctx = ctx_with_keylog


def _hkdf_expand_label(h, secret, label, context, length):
    full = b"tls13 " + label
    info = struct.pack(">H", length) + bytes([len(full)]) + full + bytes([len(context)]) + context
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(secret, t + info + bytes([i]), h).digest()
        okm, i = okm + t, i + 1
    return okm[:length]


def tls_exporter(sock, keylog, label=b"EXPORTER-Channel-Binding", context=b"", length=32):
    """TLS-Exporter(label, context, length) of RFC 8446 7.5 from the connection's
    EXPORTER_SECRET: HKDF-Expand-Label(Derive-Secret(secret, label, ""), "exporter",
    Hash(context), length). RFC 9266: label EXPORTER-Channel-Binding, empty context, 32."""
    if sock.version() != "TLSv1.3":
        raise RuntimeError("tls-exporter is derived here for TLS 1.3 only, got %s" % sock.version())
    h = hashlib.sha384 if sock.cipher()[0].endswith("SHA384") else hashlib.sha256
    secret = None
    with open(keylog) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "EXPORTER_SECRET":
                secret = bytes.fromhex(parts[2])
    if secret is None:
        raise RuntimeError("no EXPORTER_SECRET in the TLS key log")
    derived = _hkdf_expand_label(h, secret, label, h(b"").digest(), h().digest_size)
    return _hkdf_expand_label(h, derived, b"exporter", h(context).digest(), length)


def open_tls(a, source=None):
    """TCP, then ccpeer's preamble + TLS; returns the peer and its tls-exporter value."""
    p = cp.Peer.connect(a.host, a.port, source=source, timeout=a.timeout)
    version = p.handshake(a.timeout)
    return p, version, tls_exporter(p.sock, _keylogs[-1])


# ---- the engines -------------------------------------------------------------------------

def le32(b, at):
    return struct.unpack("<I", b[at:at + 4])[0]


class NtlmEngine:
    """python3-ntlm-auth's NtlmContext as it ships (NTLMv2, its own NEGOTIATE flags), with
    the binding as a gss_channel_bindings_struct: no addresses, application data
    "tls-exporter:" + the 32 bytes (doc/AUTH-NT.md, MsvAvChannelBindings)."""
    name = "nt"

    def __init__(self, a, cb):
        from ntlm_auth.gss_channel_bindings import GssChannelBindingsStruct
        from ntlm_auth.ntlm import NtlmContext
        cbt = None
        if cb is not None:
            cbt = GssChannelBindingsStruct()
            cbt[cbt.APPLICATION_DATA] = b"tls-exporter:" + cb
        with open(a.password_file) as f:
            password = f.readline().rstrip("\r\n")
        self.ctx = NtlmContext(a.user, password, domain=a.domain, workstation=a.workstation, cbt_data=cbt,
                               ntlm_compatibility=3)

    def first(self):
        tok = self.ctx.step()
        out("ntlm", message="NEGOTIATE", flags="0x%08x" % le32(tok, 12))
        return tok

    def step(self, tok):
        if cp.ntlm_type(tok) != 2:
            raise RuntimeError("expected an NTLM CHALLENGE, got %d bytes" % len(tok))
        out("ntlm", message="CHALLENGE", flags="0x%08x" % le32(tok, 20))
        auth = self.ctx.step(tok)
        out("ntlm", message="AUTHENTICATE", flags="0x%08x" % le32(auth, 60))
        return auth

    def finish(self, tok):
        """The result's token: NTLM has none, and proves nothing about the client."""
        if tok:
            raise RuntimeError("AUTH_RESULT carries a token, which NTLM never sends")
        return False


class KerberosEngine:
    """python3-gssapi's krb5 initiator: the GSS-framed AP-REQ (RFC 4121 4.1), mutual
    authentication, bound with application data "tls-exporter:" + the 32 bytes."""
    name = "kerberos"

    def __init__(self, a, cb):
        import gssapi
        from gssapi.raw import ChannelBindings
        bindings = ChannelBindings(application_data=b"tls-exporter:" + cb) if cb is not None else None
        flags = [gssapi.RequirementFlag.mutual_authentication, gssapi.RequirementFlag.out_of_sequence_detection]
        target = gssapi.Name(a.service, gssapi.NameType.kerberos_principal)
        self.ctx = gssapi.SecurityContext(name=target, mech=gssapi.MechType.kerberos, flags=flags,
                                          usage="initiate", channel_bindings=bindings)

    def first(self):
        tok = self.ctx.step()
        out("krb5", message="AP-REQ", bytes=len(tok), gss_framed=tok[:1] == b"\x60")
        return tok

    def step(self, tok):
        return self.ctx.step(tok)

    def finish(self, tok):
        """The AP-REP in the result completes the context: the client proved its key."""
        if not tok:
            raise RuntimeError("AUTH_RESULT success without the AP-REP")
        rest = self.ctx.step(tok)
        if rest or not self.ctx.complete:
            raise RuntimeError("the AP-REP did not complete the GSSAPI context")
        return True


ENGINES = {"nt": NtlmEngine, "kerberos": KerberosEngine}


# ---- the exchange --------------------------------------------------------------------------

class Refused(Exception):
    def __init__(self, code, text):
        super().__init__(text)
        self.code, self.text = code, text


def read(p, a):
    t, _, ch, payload = p.read_frame(a.timeout)
    return t, ch, payload


def exchange(p, engine, a):
    """HELLO, tokens, result; the licence verdict may arrive at any point before the result.
    Returns (identity, mutual). Raises Refused on an AUTH_RESULT failure or a CLOSE."""
    v2 = cp.PREAMBLE[5] >= 2  # the highest version ccpeer's preamble offers
    # version 2: the HELLO announces (CAP_GUESS) that the first token follows at once
    caps = getattr(cp, "CAP_GUESS", 0x0001) if v2 else 0
    p.send_frame(cp.HELLO, cp.hello_payload([engine.name.encode()], caps))
    sent_first = False
    if v2:
        p.send_frame(cp.AUTH_TOKEN, engine.first())
        sent_first = True
    licensed = False
    for _ in range(64):
        t, _, payload = read(p, a)
        if t == cp.LICENSE:
            lic = cp.parse_license(payload)
            out("license", code=lic["code"], granted=lic["granted"], detail=lic["detail"].decode())
            licensed = lic["granted"] == 1
        elif t == cp.HELLO:
            chosen = cp.parse_hello(payload)
            out("hello", mechanism=b",".join(chosen).decode())
            if chosen != [engine.name.encode()]:
                raise RuntimeError("the client chose %r, not %s" % (chosen, engine.name))
            if not sent_first:
                p.send_frame(cp.AUTH_TOKEN, engine.first())
                sent_first = True
        elif t == cp.AUTH_TOKEN:
            reply = engine.step(payload)
            if reply:
                p.send_frame(cp.AUTH_TOKEN, reply)
        elif t == cp.AUTH_RESULT:
            r = cp.parse_auth_result(payload)
            if r["code"] != 0:
                raise Refused(r["code"], r["text"].decode("utf-8", "replace"))
            if not licensed:
                raise RuntimeError("AUTH_RESULT success before a licence grant")
            return r["text"].decode(), engine.finish(r["token"])
        elif t == cp.CLOSE:
            c = cp.parse_close(payload)
            raise Refused(c["code"], c["reason"].decode("utf-8", "replace"))
        elif t == cp.PING:
            p.send_frame(cp.PONG, payload[:8])
    raise RuntimeError("no AUTH_RESULT within 64 frames")


def echo(p, a, text):
    data = text.encode()
    p.send_frame(cp.DATA, data, channel=1)
    got = b""
    while len(got) < len(data):
        t, ch, payload = read(p, a)
        if t == cp.DATA and ch == 1:
            got += payload
        elif t == cp.CLOSE:
            raise RuntimeError("CLOSE before the echo: %s" % cp.describe(t, payload))
    return got == data


def md4_or_reexec():
    """python3-ntlm-auth needs hashlib's MD4, in OpenSSL 3's legacy provider: without it,
    start again once with openssl-legacy.cnf (OpenSSL reads OPENSSL_CONF at start-up)."""
    try:
        hashlib.new("md4", b"")
        return
    except ValueError:
        pass
    if os.environ.get("CC_INTEROP_REEXEC"):
        out("error", kind="md4", message="hashlib has no MD4 even with the legacy provider")
        sys.exit(EXIT_FAIL)
    env = dict(os.environ, CC_INTEROP_REEXEC="1",
               OPENSSL_CONF=os.path.join(os.path.dirname(os.path.abspath(__file__)), "openssl-legacy.cnf"))
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--mech", choices=sorted(ENGINES), required=True)
    ap.add_argument("--user")
    ap.add_argument("--domain")
    ap.add_argument("--workstation")
    ap.add_argument("--password-file")
    ap.add_argument("--service")
    ap.add_argument("--binding", choices=["ours", "other", "none"], default="ours")
    ap.add_argument("--ca")
    ap.add_argument("--echo")
    ap.add_argument("--source", help="local address in 127.0.0.0/8 to connect from")
    ap.add_argument("--timeout", type=float, default=15.0)
    a = ap.parse_args()
    if a.mech == "nt":
        md4_or_reexec()
    global _ca
    _ca = a.ca
    _install_tls_hooks()
    try:
        other = None
        if a.binding == "other":  # a full TLS connection of its own, to the same client
            q, _, other = open_tls(a, a.source)
            q.close()
        p, version, cb = open_tls(a, a.source)
        out("tls", version=version, cipher=p.sock.cipher()[0], binding="tls-exporter, %d bytes" % len(cb))
        use = {"ours": cb, "other": other, "none": None}[a.binding]
        engine = ENGINES[a.mech](a, use)
        try:
            identity, mutual = exchange(p, engine, a)
        except Refused as e:
            out("failed", code=NAMES.get(e.code, str(e.code)), number=e.code, text=e.text)
            return EXIT_AUTH if e.code in AUTH_CODES else EXIT_FAIL
        out("established", mechanism=a.mech, identity=identity, mutual=mutual)
        if a.echo is not None:
            ok = echo(p, a, a.echo)
            out("echo", ok=ok)
            if not ok:
                return EXIT_FAIL
        p.send_frame(cp.CLOSE, cp.close_payload(0, "done"))
        p.close()
        return EXIT_OK
    except (OSError, cp.Closed, ValueError, RuntimeError, socket.timeout) as e:
        out("error", kind=e.__class__.__name__, message=str(e))
        return EXIT_FAIL
    except Exception as e:  # the engines' own errors (gssapi.exceptions.GSSError, ...)
        out("error", kind=e.__class__.__name__, message=str(e))
        return EXIT_FAIL
    finally:
        for k in _keylogs:  # the key logs hold the sessions' secrets
            try:
                os.unlink(k)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
