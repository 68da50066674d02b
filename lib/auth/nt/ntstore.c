/* ntstore.c -- the local account store of the nt authenticator: Samba's smbpasswd
 * file (name:uid:LM-hash:NT-hash:[flags]:LCT-...:), read line by line, hashes wiped. */
#include "nt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LINE_MAX_BYTES 1024
#define MAX_LINES      1000000

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 0 = 32 hex digits decoded; 1 = no hash (X's, "NO PASSWORD..." or empty); -1 = malformed */
static int parse_hash(const char *s, size_t len, uint8_t out[16])
{
    if (len == 0 || (len == 32 && (s[0] == 'X' || s[0] == 'x' || strncmp(s, "NO PASSWORD", 11) == 0)))
        return 1;
    if (len != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int cc__nt_store_lookup(const char *path, const char *user, uint8_t nt_hash[16], char *canonical, size_t canonical_len,
                        char *detail, size_t dl)
{
    char line[LINE_MAX_BYTES + 2];
    int rc = CC_ERR_AUTH_UNKNOWN_USER;
    unsigned long lineno = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        cc__fmt(detail, dl, "cannot open the account store \"%s\": %s", path, strerror(errno));
        return CC_ERR_CONFIG;
    }
    cc__fmt(detail, dl, "account \"%s\" is not in the local account store", user);
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (lineno > MAX_LINES || (len > LINE_MAX_BYTES && line[len - 1] != '\n')) {
            cc__fmt(detail, dl, "account store \"%s\" line %lu is longer than %d bytes", path, lineno, LINE_MAX_BYTES);
            rc = CC_ERR_CONFIG;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        /* split into at most 7 fields */
        char *field[7] = {0};
        size_t nf = 0;
        char *p = line;
        while (nf < 7) {
            field[nf++] = p;
            char *c = strchr(p, ':');
            if (!c)
                break;
            *c = '\0';
            p = c + 1;
        }
        if (nf < 4) {
            cc__fmt(detail, dl,
                    "account store \"%s\" line %lu has %zu fields; smbpasswd lines have "
                    "name:uid:LM-hash:NT-hash:[flags]:LCT-...:",
                    path, lineno, nf);
            rc = CC_ERR_CONFIG;
            break;
        }
        if (strcasecmp(field[0], user) != 0)
            continue;
        cc__fmt(canonical, canonical_len, "%s", field[0]);
        const char *flags = (nf >= 5 && field[4][0] == '[') ? field[4] : "[U]";
        if (!strchr(flags, ']')) {
            cc__fmt(detail, dl, "account store \"%s\" line %lu: flags field lacks ']'", path, lineno);
            rc = CC_ERR_CONFIG;
            break;
        }
        int h = parse_hash(field[3], strlen(field[3]), nt_hash);
        if (h < 0) {
            cc__fmt(detail, dl, "account store \"%s\" line %lu: NT hash is not 32 hex digits", path, lineno);
            rc = CC_ERR_CONFIG;
        } else if (strpbrk(flags, "DL")) {
            cc__fmt(detail, dl, "account \"%s\" is %s in the local account store", field[0],
                    strchr(flags, 'D') ? "disabled (D flag)" : "locked (L flag)");
            rc = CC_ERR_AUTH_DISABLED;
        } else if (!strchr(flags, 'U')) {
            cc__fmt(detail, dl, "account \"%s\" is not a user account (flags %s)", field[0], flags);
            rc = CC_ERR_AUTH_UNKNOWN_USER;
        } else if (h == 1) {
            cc__fmt(detail, dl, "account \"%s\" has no NT hash in the local account store", field[0]);
            rc = CC_ERR_AUTH_DISABLED;
        } else {
            rc = 0;
            detail[0] = '\0';
        }
        break;
    }
    if (rc == CC_ERR_AUTH_UNKNOWN_USER && ferror(f)) {
        cc__fmt(detail, dl, "cannot read the account store \"%s\"", path);
        rc = CC_ERR_CONFIG;
    }
    cc__wipe(line, sizeof line);
    fclose(f);
    if (rc != 0)
        cc__wipe(nt_hash, 16);
    return rc;
}
