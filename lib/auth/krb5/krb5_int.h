/* krb5_int.h -- declarations shared by the files of the "kerberos" authenticator:
 * error mapping (krb5err.c) and MS-PAC decoding (pac.c). */
#ifndef CC_AUTH_KRB5_INT_H
#define CC_AUTH_KRB5_INT_H

#include "../auth.h"

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>

/* Which operation failed: the same libkrb5 code means different things in each
 * (BAD_INTEGRITY is a wrong password when getting a TGT, a wrong key in a keytab
 * when accepting). */
enum krb_op {
    KRB_OP_CONFIG = 1,  /* reading krb5.conf, making a context */
    KRB_OP_CCACHE = 2,  /* opening / reading the user's credential cache */
    KRB_OP_TGT = 3,     /* AS exchange: TGT from a password */
    KRB_OP_TICKET = 4,  /* TGS exchange: service ticket */
    KRB_OP_INIT = 5,    /* building the AP-REQ (gss_init_sec_context) */
    KRB_OP_MUTUAL = 6,  /* checking the AP-REP (initiator's second step) */
    KRB_OP_ACQUIRE = 7, /* acceptor credential from the keytab */
    KRB_OP_ACCEPT = 8   /* gss_accept_sec_context */
};

/* Maps a libkrb5 error code (also the krb5 mechanism's GSS minor status) met in
 * `op` to a cc_error; `text` is libkrb5's message. Writes an actionable detail that
 * names `what` (a principal, a keytab, a ccache) into detail. */
int cc__krb_map(enum krb_op op, long code, const char *text, const char *what, char *detail, size_t detail_len);

/* Maps a GSS failure. minor is the mechanism's status (a krb5 code for krb5). */
int cc__krb_map_gss(enum krb_op op, OM_uint32 major, OM_uint32 minor, const char *what, char *detail,
                    size_t detail_len);

/* Writes gss_display_status text for (major, minor) into buf. */
void cc__krb_gss_text(OM_uint32 major, OM_uint32 minor, char *buf, size_t len);

/* Adds the account details an MS-PAC carries (see doc/AUTH-KERBEROS.md) for the
 * authenticated `name` as attributes of auth; a missing PAC adds nothing. */
int cc__krb_pac_attributes(cc_auth *auth, gss_name_t name);

/* Decoders for single PAC buffers, exposed for the unit tests. Each calls
 * add(user, key, value) per attribute and returns 0 or CC_ERR_AUTH_TOKEN when the
 * buffer is malformed (nothing is trusted: every offset and length is checked). */
typedef int (*cc__krb_attr_fn)(void *user, const char *key, const char *value);
int cc__krb_pac_logon_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user);
int cc__krb_pac_client_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user);
int cc__krb_pac_upn_dns_info(const uint8_t *p, size_t len, cc__krb_attr_fn add, void *user);

#endif
