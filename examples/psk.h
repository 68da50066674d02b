/* psk.h -- an example authenticator written only against the public plug-in
 * interface: a pre-shared key, HMAC-SHA256 challenge/response bound to TLS. */
#ifndef CC_EXAMPLES_PSK_H
#define CC_EXAMPLES_PSK_H

#include <carboncopy.h>

/* Registers mechanism "psk" with the key read from `key_file` (at least 16
 * bytes; one trailing newline ignored). The key is freed with the context.
 * Prints a message and returns a negative cc_error on failure. */
int psk_register(cc_context *ctx, const char *key_file);

#endif
