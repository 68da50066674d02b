#!/usr/bin/python3
# ccpeer.py -- a hostile Carbon Copy peer for tests, written from doc/PROTOCOL.md
# alone (its own preamble, frame codec and NTLM bytes; nothing from libcarboncopy).
#
# Runs on Debian's /usr/bin/python3 with the standard library only. Roles:
#   Peer.connect(...)       a console-side attacker: preamble, TLS without any
#                           certificate check, raw or well-formed frames, floods;
#   MaliciousClient(...)    listens like a managed machine, accepts a real
#                           cc-console and answers with whatever frames it is told;
#   Sampler(pid)            watches another process's VmRSS / Threads in /proc.
# Every wait has a deadline, every loop a bound; addresses are loopback only.

import os
import socket
import ssl
import struct
import threading
import time

# ---- wire constants (doc/PROTOCOL.md) ---------------------------------------

MAGIC = b"CCPY"
PREAMBLE = MAGIC + bytes([2, 2, 0, 1])  # versions 2..2, flags 0x0001 = TLS follows
PREAMBLE_V1 = MAGIC + bytes([1, 1, 0, 1])  # what a pre-release (version 1) peer sends
CAP_GUESS = 0x0001  # console HELLO: its first mechanism's first token follows
HDR = 8

HELLO, LICENSE, AUTH_TOKEN, AUTH_RESULT, DATA, PING, PONG, CLOSE, CONSENT_WAIT, WINDOW = range(1, 11)
FRAME_NAMES = {1: "HELLO", 2: "LICENSE", 3: "AUTH_TOKEN", 4: "AUTH_RESULT", 5: "DATA",
               6: "PING", 7: "PONG", 8: "CLOSE", 9: "CONSENT_WAIT", 10: "WINDOW"}
CHANNEL_WINDOW = 256 * 1024  # section 10: every channel's initial window, each way
DATA_MAX = 16376  # section 3.1: the largest DATA payload this library sends

# The cc_error codes the checks look for (include/carboncopy.h).
ERR = {
    -13: "CC_ERR_CLOSED", -14: "CC_ERR_TIMEOUT", -20: "CC_ERR_PROTOCOL", -23: "CC_ERR_FRAME_TOO_LARGE",
    -24: "CC_ERR_BAD_FRAME", -25: "CC_ERR_PEER_ERROR", -40: "CC_ERR_LICENSE_DENIED",
    -42: "CC_ERR_LICENSE_UNREACHABLE", -60: "CC_ERR_AUTH", -61: "CC_ERR_AUTH_NO_MECHANISM",
    -62: "CC_ERR_AUTH_BAD_CREDENTIALS", -63: "CC_ERR_AUTH_UNKNOWN_USER", -64: "CC_ERR_AUTH_DISABLED",
    -67: "CC_ERR_AUTH_TOKEN", -74: "CC_ERR_AUTH_MUTUAL", -80: "CC_ERR_CONSENT_REFUSED",
    -81: "CC_ERR_CONSENT_TIMEOUT",
}
CC_ERR_BAD_FRAME = -24


def err_name(code):
    return ERR.get(code, str(code))


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def i32(v):
    return struct.pack(">i", v)


def str16(b):
    """A str16 field; `b` is bytes (sent as is, however malformed) or str (UTF-8)."""
    if isinstance(b, str):
        b = b.encode()
    return u16(len(b)) + b


def blob32(b):
    return u32(len(b)) + b


def name8(b):
    if isinstance(b, str):
        b = b.encode()
    return bytes([len(b)]) + b


def frame(ftype, payload=b"", flags=0, channel=0):
    """One frame: type u8, flags u8, channel u16, length u32, payload."""
    return bytes([ftype, flags]) + u16(channel) + u32(len(payload)) + payload


def hello_payload(mechs, capabilities=0):
    return u16(capabilities) + bytes([len(mechs)]) + b"".join(name8(m) for m in mechs)


def license_payload(code=0, count=25, in_use=7, granted=1, detail="licence granted"):
    return i32(code) + u32(count) + u32(in_use) + bytes([granted]) + str16(detail)


def auth_result_payload(code=0, text="", token=b""):
    return i32(code) + str16(text) + blob32(token)


def close_payload(code=0, reason=""):
    return i32(code) + str16(reason)


def consent_wait_payload(ms):
    """CONSENT_WAIT (doc/PROTOCOL.md 4.8): how long the client waits for its user, u32 ms."""
    return u32(ms)


def window_frame(channel, increment):
    """WINDOW (section 10): `increment` more DATA payload bytes on `channel`."""
    return frame(WINDOW, u32(increment), channel=channel)


def ping_frame(stamp=0):
    return frame(PING, struct.pack(">Q", stamp))


class Reader:
    """Reads big-endian fields from a payload; raises ValueError past the end."""

    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("field runs past the end of the payload")
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def str16(self):
        return self.take(self.u16())

    def blob32(self):
        return self.take(self.u32())


def parse_close(p):
    r = Reader(p)
    return {"code": r.i32(), "reason": r.str16()}


def parse_license(p):
    r = Reader(p)
    return {"code": r.i32(), "count": r.u32(), "in_use": r.u32(), "granted": r.u8(), "detail": r.str16()}


def parse_auth_result(p):
    r = Reader(p)
    return {"code": r.i32(), "text": r.str16(), "token": r.blob32()}


def parse_hello(p):
    r = Reader(p)
    r.u16()
    n = r.u8()
    return [r.take(r.u8()) for _ in range(n)]


def printable(b):
    """Bytes (or str) as one ASCII-only line: \\xNN for anything not printable."""
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    return "".join(chr(c) if 0x20 <= c < 0x7F and c != 0x5C else "\\x%02x" % c for c in b)


def describe(ftype, payload):
    """A one-line, printable account of a received frame."""
    name = FRAME_NAMES.get(ftype, "type%d" % ftype)
    try:
        if ftype == CLOSE:
            c = parse_close(payload)
            return "CLOSE %s \"%s\"" % (err_name(c["code"]), printable(c["reason"]))
        if ftype == LICENSE:
            c = parse_license(payload)
            return "LICENSE %s granted=%d \"%s\"" % (err_name(c["code"]), c["granted"], printable(c["detail"]))
        if ftype == AUTH_RESULT:
            c = parse_auth_result(payload)
            return "AUTH_RESULT %s \"%s\" token=%d" % (err_name(c["code"]), printable(c["text"]), len(c["token"]))
        if ftype == HELLO:
            return "HELLO [%s]" % ", ".join(printable(m) for m in parse_hello(payload))
        if ftype == WINDOW:
            return "WINDOW +%d" % Reader(payload).u32()
    except ValueError as e:
        return "%s (malformed: %s)" % (name, e)
    return "%s len=%d" % (name, len(payload))


# ---- NTLM (MS-NLMP 2.2.1), built by hand ------------------------------------

NTLMSSP = b"NTLMSSP\0"
NTLM_UNICODE, NTLM_REQUEST_TARGET, NTLM_NTLM, NTLM_ALWAYS_SIGN = 0x1, 0x4, 0x200, 0x8000
NTLM_TARGET_TYPE_DOMAIN, NTLM_ESS, NTLM_TARGET_INFO = 0x10000, 0x80000, 0x800000
NTLM_VERSION, NTLM_128, NTLM_56 = 0x02000000, 0x20000000, 0x80000000
NTLM_VERSION_BYTES = bytes([10, 0, 0x61, 0x4A, 0, 0, 0, 15])  # 10.0.19041, NTLMSSP revision 15


def ntlm_negotiate():
    """The 40-byte NEGOTIATE_MESSAGE a console sends first (no domain, no workstation)."""
    flags = (NTLM_UNICODE | NTLM_REQUEST_TARGET | NTLM_NTLM | NTLM_ALWAYS_SIGN | NTLM_ESS | NTLM_VERSION |
             NTLM_128 | NTLM_56)
    empty = struct.pack("<HHI", 0, 0, 40)
    return NTLMSSP + struct.pack("<II", 1, flags) + empty + empty + NTLM_VERSION_BYTES


def ntlm_challenge(server_challenge=None, domain="WORKGROUP", computer="EVIL", timestamp=None):
    """A CHALLENGE_MESSAGE such as a client sends second: TargetName and TargetInfo
    (NbDomainName, NbComputerName, Timestamp, EOL) in UTF-16LE."""
    sc = server_challenge or os.urandom(8)
    if timestamp is None:  # FILETIME: 100 ns since 1601
        timestamp = int((time.time() + 11644473600) * 10000000)
    dom, comp = domain.encode("utf-16-le"), computer.encode("utf-16-le")
    info = (struct.pack("<HH", 2, len(dom)) + dom + struct.pack("<HH", 1, len(comp)) + comp +
            struct.pack("<HHQ", 7, 8, timestamp) + struct.pack("<HH", 0, 0))
    flags = (NTLM_UNICODE | NTLM_REQUEST_TARGET | NTLM_NTLM | NTLM_ALWAYS_SIGN | NTLM_TARGET_TYPE_DOMAIN |
             NTLM_ESS | NTLM_TARGET_INFO | NTLM_VERSION | NTLM_128 | NTLM_56)
    off = 56
    return (NTLMSSP + struct.pack("<I", 2) + struct.pack("<HHI", len(dom), len(dom), off) +
            struct.pack("<I", flags) + sc + bytes(8) + struct.pack("<HHI", len(info), len(info), off + len(dom)) +
            NTLM_VERSION_BYTES + dom + info)


def ntlm_type(tok):
    """1, 2 or 3 for an NTLMSSP message, else None."""
    if len(tok) >= 12 and tok[:8] == NTLMSSP:
        return struct.unpack("<I", tok[8:12])[0]
    return None


# ---- the connection ---------------------------------------------------------

class Closed(Exception):
    """The peer ended the stream (or reset it) before what was asked for arrived."""


def _no_verify_client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # version 2 is TLS 1.3 only
    return ctx


class Peer:
    """One TCP connection speaking (or abusing) the Carbon Copy protocol."""

    def __init__(self, sock):
        self.raw = sock  # the TCP socket
        self.sock = sock  # the TLS socket once start_tls() ran
        self.buf = b""
        self.peer_preamble = None

    @classmethod
    def connect(cls, host, port, source=None, timeout=10.0):
        """TCP connect, from `source` (an address in 127.0.0.0/8) when given."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect((host, port))
        return cls(s)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send_raw(self, b):
        self.sock.sendall(b)

    def send_preamble(self, b=PREAMBLE):
        self.raw.sendall(b)

    def read_preamble(self, timeout=10.0):
        self.raw.settimeout(timeout)
        b = b""
        while len(b) < 8:
            try:
                c = self.raw.recv(8 - len(b))
            except (ConnectionResetError, socket.timeout) as e:
                raise Closed("preamble: %s after %d bytes" % (e.__class__.__name__, len(b)))
            if not c:
                raise Closed("preamble: end of stream after %d bytes" % len(b))
            b += c
        self.peer_preamble = b
        return b

    def start_tls(self, timeout=10.0):
        """TLS client on the same socket, accepting any certificate."""
        self.raw.settimeout(timeout)
        self.sock = _no_verify_client_ctx().wrap_socket(self.raw, server_hostname=None)
        return self.sock.version()

    def handshake(self, timeout=10.0):
        """Preamble both ways, then TLS: where a console starts sending frames."""
        self.send_preamble()
        self.read_preamble(timeout)
        return self.start_tls(timeout)

    def channel_binding(self):
        """RFC 9266 tls-exporter (section 2): 32 bytes of the TLS exporter labelled
        "EXPORTER-Channel-Binding", empty context. Python's ssl module has no exporter, so
        this calls OpenSSL's on the SSL* inside CPython's _ssl object (its second pointer
        after the object header, as in CPython 3.11's Modules/_ssl.c)."""
        import ctypes
        lib = ctypes.CDLL("libssl.so.3")
        f = lib.SSL_export_keying_material
        f.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                      ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        ssl_ptr = ctypes.c_void_p.from_address(id(self.sock._sslobj) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
        out = ctypes.create_string_buffer(32)
        label = b"EXPORTER-Channel-Binding"
        if f(ssl_ptr, out, 32, label, len(label), None, 0, 0) != 1:
            raise ValueError("SSL_export_keying_material failed")
        return out.raw

    def psk_console(self, key, name=b"tech", timeout=10.0):
        """Section 5: HELLO [psk] with GUESS and the console's proof, then the client's
        frames until its AUTH_RESULT; returns them (the session is established when it is 0)."""
        import hashlib
        import hmac
        cb = self.channel_binding()
        proof = hmac.new(key, b"cc-psk2 console" + cb + name, hashlib.sha256).digest()
        self.send_frame(HELLO, hello_payload([b"psk"], CAP_GUESS))
        self.send_frame(AUTH_TOKEN, proof + name)
        return self.frames_until({AUTH_RESULT, CLOSE}, timeout=timeout)

    def send_frame(self, ftype, payload=b"", flags=0, channel=0):
        self.sock.sendall(frame(ftype, payload, flags, channel))

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no frame before the deadline")
            self.sock.settimeout(left)
            try:
                c = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
                raise Closed(str(e) or e.__class__.__name__)
            except ssl.SSLError as e:
                raise Closed("TLS: %s" % e)
            if not c:
                raise Closed("end of stream")
            self.buf += c

    def read_frame(self, timeout=10.0):
        """The next frame as (type, flags, channel, payload)."""
        deadline = time.monotonic() + timeout
        self._fill(HDR, deadline)
        t, fl, ch, n = struct.unpack(">BBHI", self.buf[:HDR])
        if n > 16 << 20:
            raise ValueError("frame length %d is beyond anything the protocol allows" % n)
        self._fill(HDR + n, deadline)
        p = self.buf[HDR:HDR + n]
        self.buf = self.buf[HDR + n:]
        return t, fl, ch, p

    def frames_until(self, stop_types, timeout=10.0, limit=64):
        """Reads frames (at most `limit`) until one of `stop_types` arrives, the stream
        ends or the deadline passes; returns [(type, payload)] and why it stopped."""
        got, deadline = [], time.monotonic() + timeout
        for _ in range(limit):
            try:
                t, _, _, p = self.read_frame(max(0.01, deadline - time.monotonic()))
            except Closed as e:
                return got, "closed: %s" % e
            except socket.timeout:
                return got, "deadline"
            got.append((t, p))
            if t in stop_types:
                return got, "frame"
        return got, "limit"

    def close(self):
        for s in (self.sock, self.raw):
            try:
                s.close()
            except OSError:
                pass


# ---- the malicious client ---------------------------------------------------

class MaliciousClient:
    """Listens on 127.0.0.1 like a managed machine, with a certificate the console
    trusts, and plays whatever script it is given to the console that connects."""

    def __init__(self, cert, key, host="127.0.0.1", port=0):
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)

    def accept(self, timeout=20.0):
        """Accepts one console and does preamble + TLS as the TLS server."""
        self.ls.settimeout(timeout)
        s, _ = self.ls.accept()
        p = Peer(s)
        p.read_preamble(timeout)
        p.send_preamble()
        s.settimeout(timeout)
        p.sock = self.ctx.wrap_socket(s, server_side=True)
        return p

    def close(self):
        self.ls.close()


# ---- watching the target from outside ---------------------------------------

def proc_status(pid):
    """VmRSS/VmHWM in KiB and Threads of process `pid`, from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


class Sampler(threading.Thread):
    """Samples a process's RSS and thread count every `interval` seconds and keeps
    the peaks, until stop() (or the process is gone). growth_kib() also counts a
    peak between two samples, through VmHWM (the kernel's own high-water mark)."""

    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        st = proc_status(pid)
        self.rss0, self.hwm0, self.threads0 = st["VmRSS"], st["VmHWM"], st["Threads"]
        self.rss_peak, self.hwm_end, self.threads_peak = self.rss0, self.hwm0, self.threads0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                st = proc_status(self.pid)
            except (OSError, KeyError):
                return
            self.rss_peak = max(self.rss_peak, st["VmRSS"])
            self.hwm_end = st["VmHWM"]
            self.threads_peak = max(self.threads_peak, st["Threads"])
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)
        return self

    def growth_kib(self):
        return max(self.rss_peak - self.rss0, self.hwm_end - max(self.hwm0, self.rss0))


def sources(n, base="127.0.%d.%d", first_net=10):
    """`n` distinct loopback source addresses: 127.0.10.1, 127.0.10.2, ... (skipping
    .0 and .255), so a per-address limit cannot hide an attack from many hosts."""
    out, net, host = [], first_net, 1
    while len(out) < n:
        out.append(base % (net, host))
        host += 1
        if host == 255:
            net, host = net + 1, 1
    return out
