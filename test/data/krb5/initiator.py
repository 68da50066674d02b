#!/usr/bin/python3
# initiator.py -- an independent GSSAPI krb5 initiator (python3-gssapi) for
# test-krb5: builds an AP-REQ bound (or not) to a tls-exporter value, then checks
# the acceptor's AP-REP, so our acceptor is tested against code we did not write.
#
# Usage: initiator.py TARGET-PRINCIPAL CB-HEX|none
#   prints the token as one hex line, reads the reply as one hex line on stdin
#   (empty line: none), prints "complete" once mutual authentication succeeded.
import sys

import gssapi
from gssapi.raw import ChannelBindings


def main():
    target, cb = sys.argv[1], sys.argv[2]
    name = gssapi.Name(target, gssapi.NameType.kerberos_principal)
    flags = [gssapi.RequirementFlag.mutual_authentication, gssapi.RequirementFlag.out_of_sequence_detection]
    bindings = None
    if cb != "none":
        # RFC 9266 naming: the application data is "tls-exporter:" + the 32 bytes.
        bindings = ChannelBindings(application_data=b"tls-exporter:" + bytes.fromhex(cb))
    ctx = gssapi.SecurityContext(name=name, mech=gssapi.MechType.kerberos, flags=flags, usage="initiate",
                                 channel_bindings=bindings)
    tok = ctx.step()
    print(tok.hex(), flush=True)
    reply = sys.stdin.readline().strip()
    if not reply:
        return 0
    ctx.step(bytes.fromhex(reply))
    if ctx.complete:
        print("complete", flush=True)
        return 0
    print("incomplete", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
