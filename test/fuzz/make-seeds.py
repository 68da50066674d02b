#!/usr/bin/env python3
# make-seeds.py -- writes the seed corpora of the fuzz targets into test/fuzz/corpus/<target>/
# from the test data and the MS-NLMP 4.2.4 messages; rerun after changing an input format.
import os
import ssl
import struct
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, "test", "fuzz", "corpus")
data = os.path.join(root, "test", "data")


def put(target, name, blob, keep=False):
    """keep: leave an existing file alone (for seeds that differ on every run)."""
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if keep and os.path.exists(os.path.join(d, name)):
        return
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def unhex(s):
    return bytes.fromhex("".join(c for c in s if c in "0123456789abcdef"))


# ---- NTLM (MS-NLMP 4.2.4.3, as test/test-nt.c has them) ----
chal = unhex("4e544c4d53535000 02000000 0c000c00 38000000 33828ae2 0123456789abcdef 0000000000000000"
             "24002400 44000000 06007017 0000000f 530065007200760065007200"
             "02000c00 44006f006d00610069006e00 01000c00 530065007200760065007200 00000000")
auth = unhex("4e544c4d535350000300000018001800 6c00000054005400840000000c000c00"
             "48000000080008005400000010001000 5c00000010001000d8000000358288e2"
             "0501280a0000000f44006f006d006100 69006e00550073006500720043004f00"
             "4d00500055005400450052008 6c35097 ac9cec102554764a57cccc19aaaaaaaa"
             "aaaaaaaa68cd0ab851e51c96aabc927b ebef6a1c010100000000000000000000"
             "00000000aaaaaaaaaaaaaaaa00000000 02000c0044006f006d00610069006e00"
             "01000c00530065007200760065007200 0000000000000000c5dad2544fc97990"
             "94ce1ce90bc9d03e")
assert len(auth) == 232, len(auth)
negotiate = b"NTLMSSP\0" + struct.pack("<II", 1, 0xE2088297) + struct.pack("<HHI", 0, 0, 40) * 2 + \
    bytes.fromhex("0a00634500000f")  + b"\0"
assert len(negotiate) == 40

put("fuzz-ntlm", "negotiate", b"\0" + negotiate)
put("fuzz-ntlm", "negotiate-oem", b"\0" + negotiate[:12] + b"\x02\0\0\0" + negotiate[16:])
put("fuzz-ntlm", "challenge-4.2.4.3", b"\0" + chal)
put("fuzz-ntlm", "authenticate-4.2.4.3", b"\0" + auth)
put("fuzz-ntlm", "authenticate-truncated", b"\0" + auth[:100])
put("fuzz-ntlm", "authenticate-bad-offset", b"\0" + auth[:20] + b"\xff\xff\0\0" + auth[24:])
put("fuzz-ntlm", "utf16-surrogates", b"\0" + b"\x00\xd8a\x00\x3d\xd8\x00\xde\x07\x00")
smb = (b"# comment\n"
       b"root:0:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:[DU         ]:LCT-00000000:\n"
       b"User:1000:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:A4F49C406510BDCAB6824EE7C30FD852:[U          ]:LCT-5F5E0C3A:\n"
       b"locked:1001:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:A4F49C406510BDCAB6824EE7C30FD852:[UL         ]:LCT-5F5E0C3A:\n"
       b"nopw:1002:NO PASSWORDXXXXXXXXXXXXXXXXXXXXX:NO PASSWORDXXXXXXXXXXXXXXXXXXXXX:[NU         ]:LCT-5F5E0C3A:\n"
       b"machine$:1003:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:A4F49C406510BDCAB6824EE7C30FD852:[W          ]:LCT-5F5E0C3A:\n")
put("fuzz-ntlm", "store-user", b"\x01user\n" + smb)
put("fuzz-ntlm", "store-locked", b"\x01locked\n" + smb)
put("fuzz-ntlm", "store-nopw", b"\x01NOPW\n" + smb)
put("fuzz-ntlm", "store-machine", b"\x01machine$\n" + smb)
put("fuzz-ntlm", "store-bad-hash", b"\x01bob\nbob:1:X:0123456789abcdefg123456789abcdef:[U]:\n")
put("fuzz-ntlm", "store-no-bracket", b"\x01bob\nbob:1:X:0123456789abcdef0123456789abcdef:[U:\n")
put("fuzz-ntlm", "store-few-fields", b"\x01bob\nbob:1\n")

# ---- licence pages: the test data, whole and cut in three ----
for name in sorted(os.listdir(os.path.join(data, "license"))):
    with open(os.path.join(data, "license", name), "rb") as f:
        page = f.read()
    base = os.path.splitext(name)[0]
    put("fuzz-license-page", base, b"\0" + page)
    if name in ("granted.xml", "namespaced.xml", "attributes.xml"):
        put("fuzz-license-page", base + "-cut", b"\x02" + struct.pack(">HH", 7, len(page) // 2) + page)
    if name in ("granted.xml", "denied-equal.xml", "expired.xml"):
        put("fuzz-license-page", base + "-job", b"\x29" + struct.pack(">H", 5) + page)  # through a job, HTTP 200
with open(os.path.join(data, "license", "granted.xml"), "rb") as f:
    page = f.read()
put("fuzz-license-page", "granted-job-503", b"\x68" + page)
put("fuzz-license-page", "granted-job-too-large", b"\x18" + page + b"<!-- " + b"x" * 2100 + b" -->")

# ---- PAC: the Windows 2003 PAC whole, its logon and client info, a UPN/DNS info ----
pac = b""
with open(os.path.join(data, "krb5", "w2003-pac.hex")) as f:
    for line in f:
        if not line.startswith("#"):
            pac += unhex(line.strip())
assert len(pac) == 624, len(pac)
put("fuzz-pac", "w2003-pac", b"\x03" + pac)
put("fuzz-pac", "w2003-pac-fail-at-2", b"\x0b" + pac)
count, _ = struct.unpack_from("<II", pac, 0)
for i in range(count):
    typ, size, off = struct.unpack_from("<IIQ", pac, 8 + 16 * i)
    buf = pac[off:off + size]
    if typ == 1:
        put("fuzz-pac", "w2003-logon-info", b"\x00" + buf)
        put("fuzz-pac", "w2003-logon-info-truncated", b"\x00" + buf[:len(buf) // 2])
    elif typ == 10:
        put("fuzz-pac", "w2003-client-info", b"\x01" + buf)


def u16le(s):
    return s.encode("utf-16-le")


upn, dns, sam = u16le("alice@cc.test"), u16le("CC.TEST"), u16le("alice")
sid = bytes([1, 5, 0, 0, 0, 0, 0, 5]) + struct.pack("<5I", 21, 1, 2, 3, 1104)
o = 24
hdr = struct.pack("<HHHHIHHHH", len(upn), o, len(dns), o + len(upn), 2, len(sam), o + len(upn) + len(dns),
                  len(sid), o + len(upn) + len(dns) + len(sam))
put("fuzz-pac", "upn-dns-info-ext", b"\x02" + hdr + upn + dns + sam + sid)
put("fuzz-pac", "upn-dns-info", b"\x02" + struct.pack("<HHHHI", len(upn), 12, len(dns), 12 + len(upn), 0) + upn + dns)


# ---- session: preamble, frames, and whole conversations ----
def frame(t, payload, ch=0, flags=0):
    return struct.pack(">BBHI", t, flags, ch, len(payload)) + payload


def s16(x):
    return struct.pack(">H", len(x)) + x


def hello(*mechs):
    return frame(1, struct.pack(">HB", 0, len(mechs)) + b"".join(bytes([len(m)]) + m for m in mechs))


def hello_guess(*mechs):
    """A version 2 console HELLO with CAP_GUESS: its first mechanism's first token follows."""
    return frame(1, struct.pack(">HB", 1, len(mechs)) + b"".join(bytes([len(m)]) + m for m in mechs))


def close(code, reason):
    return frame(8, struct.pack(">i", code) + s16(reason))


# A real TLS ClientHello after our preamble (mode 0: raw bytes into the session).
c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
c.check_hostname = False
c.verify_mode = ssl.CERT_NONE
i, o_ = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = c.wrap_bio(i, o_, server_side=False, server_hostname="localhost")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
client_hello = o_.read()
pre = b"CCPY\x02\x02\x00\x01"  # protocol version 2
T = 0x1d  # mode: through TLS, licence granted, close_notify, 2 KiB records
put("fuzz-preamble-frames", "raw-client-hello", b"\x00" + pre + client_hello, keep=True)
put("fuzz-preamble-frames", "raw-client-hello-big-reads", b"\x78" + pre + client_hello, keep=True)
put("fuzz-preamble-frames", "raw-bad-magic", b"\x00" + b"GET / HTTP/1.1\r\n\r\n")
put("fuzz-preamble-frames", "raw-bad-version", b"\x00" + b"CCPY\x01\x01\x00\x01")  # a version 1 peer
put("fuzz-preamble-frames", "raw-no-tls", b"\x00" + b"CCPY\x02\x02\x00\x00")
put("fuzz-preamble-frames", "tls-fuzz-mech", bytes([T]) + hello(b"fuzz", b"nt") + frame(3, b"ok") +
    frame(5, b"hello", ch=7) + frame(5, b"Secho", ch=3) + frame(6, b"12345678") + close(0, b"bye"))
put("fuzz-preamble-frames", "tls-fuzz-more", bytes([T]) + hello(b"fuzz") + frame(3, b"more") + frame(3, b"ok") +
    frame(5, b"Cclose now") + frame(7, b""))
put("fuzz-preamble-frames", "tls-host-calls", bytes([T]) + hello(b"fuzz") + frame(3, b"ok") + frame(5, b"P") +
    frame(7, b"12345678") + frame(5, b"R\x01") + frame(5, b"Sx" * 100, ch=9) + frame(5, b"C\x0c"))
put("fuzz-preamble-frames", "tls-licence-denied", bytes([T | 2]) + hello(b"fuzz"))
put("fuzz-preamble-frames", "tls-nt", bytes([T]) + hello(b"nt") + frame(3, negotiate) + frame(3, auth))
put("fuzz-preamble-frames", "tls-unknown-mech", bytes([T]) + hello(b"kerberos"))
put("fuzz-preamble-frames", "tls-close-error", bytes([T & ~4]) + hello(b"fuzz") + close(-60, b"no"))
put("fuzz-preamble-frames", "tls-bad-frames", bytes([T]) + frame(9, b"") + frame(1, b"\0\0\x09") +
    struct.pack(">BBHI", 5, 0, 0, 0x7fffffff))
put("fuzz-preamble-frames", "tls-auth-result", bytes([T]) + hello(b"fuzz") +
    frame(4, struct.pack(">i", 0) + s16(b"x") + struct.pack(">I", 2) + b"ok") +
    frame(2, struct.pack(">iIIB", 0, 10, 1, 1) + s16(b"granted")))
# The session as a console (mode bit 7), the harness playing the client.
C = 0x80 | T
lic = frame(2, struct.pack(">iIIB", 0, 10, 1, 1) + s16(b"licence granted"))
result_ok = frame(4, struct.pack(">i", 0) + s16(b"DOMAIN\\user") + struct.pack(">I", 2) + b"ok")
put("fuzz-preamble-frames", "console-fuzz-mech", bytes([C]) + lic + hello(b"fuzz") + result_ok +
    frame(5, b"data", ch=1) + frame(6, b"ping") + close(0, b"bye"))
put("fuzz-preamble-frames", "console-fuzz-token", bytes([C]) + lic + hello(b"fuzz") + frame(3, b"ok") +
    frame(4, struct.pack(">i", 0) + s16(b"user") + struct.pack(">I", 0)))
put("fuzz-preamble-frames", "console-nt", bytes([C]) + lic + hello(b"nt") + frame(3, chal) +
    frame(4, struct.pack(">i", 0) + s16(b"DOMAIN\\user") + struct.pack(">I", 0)))
put("fuzz-preamble-frames", "console-licence-denied", bytes([C]) +
    frame(2, struct.pack(">iIIB", -40, 10, 10, 0) + s16(b"no licence free")))
put("fuzz-preamble-frames", "console-auth-refused", bytes([C]) + lic + hello(b"fuzz") +
    frame(4, struct.pack(">i", -62) + s16(b"wrong password") + struct.pack(">I", 0)))

# ---- a whole client session: two mode bytes, then what a console sends ----
# Byte 0: bit 0 TLS, bits 1-2 licence (granted, denied, HTTP 503, failed), bit 3 close_notify,
# bits 4-7 read/record size; byte 1: bit 0 late licence, bits 1-3 read window, bit 4 host acts on DATA,
# bit 5 the console sends all at once (else what follows its HELLO waits for the client's HELLO).
def cs(m0, m1=0x10):
    return bytes([m0, m1])


G = 0x19      # TLS, granted, close_notify, 2 KiB records
psk_name, psk_proof = b"alice", bytes(a ^ b for a, b in zip(b"cc-nonce", b"fuzz-key"))
psk_ok = hello(b"psk") + frame(3, psk_name) + frame(3, psk_proof)
put("fuzz-client-session", "raw-client-hello", cs(0x00, 0) + pre + client_hello, keep=True)
put("fuzz-client-session", "raw-client-hello-big-reads", cs(0xf0, 0) + pre + client_hello, keep=True)
put("fuzz-client-session", "raw-bad-magic", cs(0x00, 0) + b"GET / HTTP/1.1\r\n\r\n")
put("fuzz-client-session", "raw-no-tls", cs(0x00, 0) + b"CCPY\x02\x02\x00\x00")
put("fuzz-client-session", "tls-hello-psk", cs(G) + hello(b"psk"))
put("fuzz-client-session", "tls-hello-nt", cs(G) + hello(b"nt"))
put("fuzz-client-session", "tls-hello-both", cs(G) + hello(b"kerberos", b"nt", b"psk"))
put("fuzz-client-session", "tls-hello-unknown", cs(G) + hello(b"kerberos"))
put("fuzz-client-session", "tls-psk-established", cs(G) + psk_ok + frame(5, b"hello", ch=1) +
    frame(6, b"12345678") + frame(7, b"") + close(0, b"bye"))
put("fuzz-client-session", "tls-psk-wrong-proof", cs(G) + hello(b"psk") + frame(3, psk_name) + frame(3, b"12345678"))
put("fuzz-client-session", "tls-psk-unknown-name", cs(G) + hello(b"psk") + frame(3, b"mallory"))
put("fuzz-client-session", "tls-psk-token-too-large", cs(G) + hello(b"psk") + frame(3, b"x" * 5000))
put("fuzz-client-session", "tls-token-before-hello", cs(G) + frame(3, psk_name) + hello(b"psk"))
put("fuzz-client-session", "tls-pings", cs(G) + frame(6, b"12345678") * 4 + hello(b"psk") + frame(6, b"ab") * 4)
put("fuzz-client-session", "tls-pings-not-read", cs(G, 0x12) + hello(b"psk") + frame(6, b"12345678") * 400)
put("fuzz-client-session", "tls-close", cs(G) + hello(b"psk") + close(0, b"bye"))
put("fuzz-client-session", "tls-close-error", cs(G & ~8) + hello(b"psk") + close(-60, b"no"))
put("fuzz-client-session", "tls-nt-negotiate-authenticate", cs(G) + hello(b"nt") + frame(3, negotiate) + frame(3, auth))
put("fuzz-client-session", "tls-nt-authenticate-first", cs(G) + hello(b"nt") + frame(3, auth))
put("fuzz-client-session", "tls-licence-denied", cs(G | 2) + hello(b"psk"))
put("fuzz-client-session", "tls-licence-503", cs(G | 4) + hello(b"psk"))
put("fuzz-client-session", "tls-licence-failed", cs(G | 6) + hello(b"psk"))
put("fuzz-client-session", "tls-licence-late", cs(G, 0x11) + hello(b"psk") + frame(6, b"12345678") * 3)
put("fuzz-client-session", "tls-echo-not-read", cs(G, 0x14) + psk_ok + frame(5, b"S\x0f" + b"x" * 2000, ch=3) * 8 +
    frame(5, b"P\x0f", ch=1))
put("fuzz-client-session", "tls-pipelined", cs(G, 0x30) + psk_ok + frame(5, b"early", ch=1))
put("fuzz-client-session", "tls-host-close", cs(G) + psk_ok + frame(5, b"C", ch=1))
put("fuzz-client-session", "tls-guess-taken", cs(G) + hello_guess(b"psk") + frame(3, psk_name) + frame(3, psk_proof))
put("fuzz-client-session", "tls-guess-not-taken", cs(G) + hello_guess(b"kerberos", b"psk") + frame(3, b"AP-REQ?") +
    frame(3, psk_name) + frame(3, psk_proof))
put("fuzz-client-session", "tls-bad-frames", cs(G) + frame(9, b"") + struct.pack(">BBHI", 5, 0, 0, 0x7fffffff))
print("seeds written to", out)
