/* krb5err.c -- turns libkrb5 / GSSAPI failures into cc_error codes with details
 * that tell an administrator what to do (doc/AUTH-KERBEROS.md lists them all). */
#include "krb5_int.h"

#include <errno.h>
#include <string.h>

void cc__krb_gss_text(OM_uint32 major, OM_uint32 minor, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    /* Routine errors first, then the mechanism's own (which is the useful part). */
    for (int pass = 0; pass < 2; pass++) {
        OM_uint32 code = pass == 0 ? major : minor;
        int type = pass == 0 ? GSS_C_GSS_CODE : GSS_C_MECH_CODE;
        if (pass == 0 && GSS_ROUTINE_ERROR(major) == GSS_S_FAILURE && minor)
            continue; /* "Unspecified GSS failure" adds nothing */
        if (pass == 1 && !minor)
            continue;
        OM_uint32 ctx = 0, mn;
        int rounds = 0;
        do {
            gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
            OM_uint32 maj = gss_display_status(&mn, code, type, pass == 1 ? gss_mech_krb5 : GSS_C_NO_OID, &ctx, &msg);
            if (GSS_ERROR(maj))
                break;
            if (msg.length && used + 2 < len && !(msg.length == 7 && memcmp(msg.value, "Success", 7) == 0)) {
                int n = (int)(msg.length < len - used - 3 ? msg.length : len - used - 3);
                cc__fmt(buf + used, len - used, "%s%.*s", used ? "; " : "", n, (const char *)msg.value);
                used = strlen(buf);
            }
            gss_release_buffer(&mn, &msg);
        } while (ctx && ++rounds < 4);
    }
    if (!buf[0])
        cc__fmt(buf, len, "GSS major 0x%x, minor %u", (unsigned)major, (unsigned)minor);
}

int cc__krb_map(enum krb_op op, long code, const char *text, const char *what, char *d, size_t dl)
{
    const char *w = what && *what ? what : "?";
    const char *t = text && *text ? text : "no message";
    switch (code) {
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
        cc__fmt(d, dl, "the KDC does not know the user principal %s (%s); check the user name and realm", w, t);
        return CC_ERR_AUTH_UNKNOWN_USER;
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
        cc__fmt(d, dl,
                "the KDC does not know the service principal %s (%s); register the client's service principal "
                "(kadmin addprinc / AD setspn) or give the console the right service name",
                w, t);
        return CC_ERR_AUTH_UNKNOWN_USER;
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5_PREAUTH_FAILED:
        cc__fmt(d, dl, "the KDC refused the password of %s (%s); check the password", w, t);
        return CC_ERR_AUTH_BAD_CREDENTIALS;
    case KRB5KDC_ERR_KEY_EXP:
        cc__fmt(d, dl, "the password of %s has expired (%s); change it, then try again", w, t);
        return CC_ERR_AUTH_EXPIRED;
    case KRB5KDC_ERR_NAME_EXP:
        cc__fmt(d, dl, "the account %s has expired (%s); ask the domain administrator to extend it", w, t);
        return CC_ERR_AUTH_DISABLED;
    case KRB5KDC_ERR_CLIENT_REVOKED:
        cc__fmt(d, dl, "the account %s is disabled or locked (%s); ask the domain administrator", w, t);
        return CC_ERR_AUTH_DISABLED;
    case KRB5_KDC_UNREACH:
    case KRB5_REALM_CANT_RESOLVE:
    case KRB5_REALM_UNKNOWN:
    case ETIMEDOUT:
    case ECONNREFUSED:
        cc__fmt(d, dl,
                "no KDC of the realm answered (%s) while working for %s; check that the KDC runs and that "
                "krb5.conf (KRB5_CONFIG) names it",
                t, w);
        return CC_ERR_AUTH_KDC_UNREACHABLE;
    case KRB5_CONFIG_NODEFREALM:
        cc__fmt(d, dl, "no default realm is configured (%s); set default_realm in krb5.conf or give user@REALM", t);
        return CC_ERR_CONFIG;
    case KRB5KRB_AP_ERR_SKEW:
        cc__fmt(d, dl,
                "the clocks of this machine and the %s differ by more than the allowed skew (%s); "
                "synchronise the clocks (NTP)",
                op == KRB_OP_ACCEPT ? "console" : "KDC", t);
        return CC_ERR_AUTH_CLOCK_SKEW;
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
    case KRB5KRB_AP_ERR_TKT_NYV:
    case KRB5KDC_ERR_TGT_REVOKED:
        if (op == KRB_OP_ACCEPT)
            cc__fmt(d, dl,
                    "the console's service ticket is expired or not yet valid (%s); the console should "
                    "get a new ticket (kinit)",
                    t);
        else
            cc__fmt(d, dl, "the Kerberos credentials of %s have expired (%s); run kinit again", w, t);
        return CC_ERR_AUTH_EXPIRED;
    case KRB5_FCC_NOFILE:
    case KRB5_CC_NOTFOUND:
    case KRB5_CC_NOSUPP:
    case KRB5_CC_BADNAME:
    case KRB5_CC_FORMAT:
    case KRB5_CC_END:
        if (op == KRB_OP_CCACHE || op == KRB_OP_INIT || op == KRB_OP_TICKET) {
            cc__fmt(d, dl,
                    "no usable Kerberos ticket in the credential cache %s (%s); run kinit or give the console a "
                    "user and password",
                    w, t);
            return CC_ERR_AUTH_NO_CREDENTIALS;
        }
        break;
    case KRB5KRB_AP_ERR_REPEAT:
    case KRB5_RC_REPLAY:
        cc__fmt(d, dl, "the console's authenticator was already used (%s): a replayed token was refused", t);
        return CC_ERR_AUTH_REPLAY;
    case KRB5_KT_NOTFOUND:
    case KRB5_KT_KVNONOTFOUND:
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5KRB_AP_ERR_NOT_US:
    case KRB5KRB_AP_WRONG_PRINC:
    case KRB5_KT_END:
    case KRB5_KT_NOWRITE:
    case KRB5_KT_BADNAME:
    case KRB5_KT_UNKNOWN_TYPE:
    case KRB5_KT_FORMAT:
    case ENOENT:
    case EACCES:
        if (op == KRB_OP_ACQUIRE || op == KRB_OP_ACCEPT) {
            cc__fmt(d, dl,
                    "the keytab %s cannot decrypt the console's ticket (%s); export the current key of the "
                    "service principal into the keytab (kadmin ktadd / AD: ktpass or a fresh keytab after a "
                    "password change)",
                    w, t);
            return CC_ERR_AUTH_KEYTAB;
        }
        break;
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5KRB_AP_ERR_MODIFIED:
        if (op == KRB_OP_TGT) {
            cc__fmt(d, dl, "the password of %s is wrong (%s)", w, t);
            return CC_ERR_AUTH_BAD_CREDENTIALS;
        }
        if (op == KRB_OP_ACCEPT || op == KRB_OP_ACQUIRE) {
            cc__fmt(d, dl,
                    "the key in keytab %s does not match the KDC's (%s); the service was re-keyed: export its "
                    "current key into the keytab",
                    w, t);
            return CC_ERR_AUTH_KEYTAB;
        }
        if (op == KRB_OP_MUTUAL) {
            cc__fmt(d, dl, "the client's mutual-authentication reply does not verify (%s)", t);
            return CC_ERR_AUTH_MUTUAL;
        }
        break;
    default:
        break;
    }
    switch (op) {
    case KRB_OP_CONFIG:
        cc__fmt(d, dl, "Kerberos configuration (krb5.conf / KRB5_CONFIG) cannot be used: %s", t);
        return CC_ERR_CONFIG;
    case KRB_OP_CCACHE:
        cc__fmt(d, dl, "the credential cache %s cannot be used (%s); run kinit", w, t);
        return CC_ERR_AUTH_NO_CREDENTIALS;
    case KRB_OP_TGT:
        cc__fmt(d, dl, "getting a ticket for %s from its password failed: %s", w, t);
        return CC_ERR_AUTH;
    case KRB_OP_TICKET:
        cc__fmt(d, dl, "getting a service ticket for %s failed: %s", w, t);
        return CC_ERR_AUTH;
    case KRB_OP_MUTUAL:
        cc__fmt(d, dl, "the client failed mutual authentication: %s", t);
        return CC_ERR_AUTH_MUTUAL;
    case KRB_OP_ACQUIRE:
        cc__fmt(d, dl, "the acceptor credential from keytab %s cannot be used: %s", w, t);
        return CC_ERR_AUTH_KEYTAB;
    default:
        cc__fmt(d, dl, "Kerberos authentication failed: %s", t);
        return CC_ERR_AUTH;
    }
}

int cc__krb_map_gss(enum krb_op op, OM_uint32 major, OM_uint32 minor, const char *what, char *d, size_t dl)
{
    char text[300];
    cc__krb_gss_text(major, minor, text, sizeof text);
    OM_uint32 rout = GSS_ROUTINE_ERROR(major);
    /* Routine errors that say it all by themselves. */
    if (rout == GSS_S_BAD_BINDINGS) {
        cc__fmt(d, dl,
                "the console's token is bound to a different TLS connection (%s): a token relayed from "
                "another connection, or a TLS-intercepting proxy between console and client",
                text);
        return CC_ERR_AUTH_CHANNEL_BINDING;
    }
    if (major & GSS_S_DUPLICATE_TOKEN || rout == GSS_S_DUPLICATE_ELEMENT) {
        cc__fmt(d, dl, "the console's token was already used (%s): a replayed token was refused", text);
        return CC_ERR_AUTH_REPLAY;
    }
    if (minor) {
        int r = cc__krb_map(op, (long)(int32_t)minor, text, what, d, dl);
        if (r != CC_ERR_AUTH && r != CC_ERR_AUTH_KEYTAB && r != CC_ERR_AUTH_MUTUAL && r != CC_ERR_AUTH_NO_CREDENTIALS &&
            r != CC_ERR_CONFIG)
            return r;
        if (r == CC_ERR_AUTH_KEYTAB && (op == KRB_OP_ACCEPT || op == KRB_OP_ACQUIRE))
            return r;
    }
    if (rout == GSS_S_NO_CRED || rout == GSS_S_CREDENTIALS_EXPIRED) {
        if (op == KRB_OP_ACQUIRE || op == KRB_OP_ACCEPT) {
            cc__fmt(d, dl, "no usable service key in keytab %s (%s); export the service key (kadmin ktadd)",
                    what ? what : "(default)", text);
            return CC_ERR_AUTH_KEYTAB;
        }
        if (rout == GSS_S_CREDENTIALS_EXPIRED) {
            cc__fmt(d, dl, "the Kerberos credentials of %s have expired (%s); run kinit again", what ? what : "?",
                    text);
            return CC_ERR_AUTH_EXPIRED;
        }
        cc__fmt(d, dl, "no Kerberos credentials (%s); run kinit or give the console a user and password", text);
        return CC_ERR_AUTH_NO_CREDENTIALS;
    }
    if (op == KRB_OP_MUTUAL) {
        cc__fmt(d, dl, "the client failed to prove its identity (Kerberos mutual authentication): %s", text);
        return CC_ERR_AUTH_MUTUAL;
    }
    if (rout == GSS_S_DEFECTIVE_TOKEN || rout == GSS_S_BAD_MECH || rout == GSS_S_DEFECTIVE_CREDENTIAL ||
        rout == GSS_S_BAD_SIG) {
        cc__fmt(d, dl, "the Kerberos token is malformed or not a krb5 token (%s)", text);
        return CC_ERR_AUTH_TOKEN;
    }
    if (minor)
        return cc__krb_map(op, (long)(int32_t)minor, text, what, d, dl);
    return cc__krb_map(op, 0, text, what, d, dl);
}
