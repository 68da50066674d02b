/* ntstore.c -- the local account store of the nt authenticator: Samba's smbpasswd
 * file (name:uid:LM-hash:NT-hash:[flags]:LCT-...:), read with read(2), every buffer wiped. */
#include "nt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024
#define MAX_LINES      1000000
#define CHUNK_BYTES    4096

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

/* What one line of the file decided. */
enum { LINE_NEXT, LINE_DONE };

struct lookup {
    const char *path, *user;
    uint8_t *nt_hash;
    char *canonical, *detail;
    size_t canonical_len, dl;
    unsigned long lineno;
    int rc;
};

/* One line, NUL-terminated, without its newline. Only the line of the user
 * looked up has its hash decoded; every other line is just compared by name. */
static int one_line(struct lookup *lk, char *line, size_t len)
{
    const char *path = lk->path;
    char *detail = lk->detail;
    size_t dl = lk->dl;
    unsigned long lineno = lk->lineno;
    while (len && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return LINE_NEXT;
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
        lk->rc = CC_ERR_CONFIG;
        return LINE_DONE;
    }
    if (strcasecmp(field[0], lk->user) != 0)
        return LINE_NEXT;
    cc__fmt(lk->canonical, lk->canonical_len, "%s", field[0]);
    const char *flags = (nf >= 5 && field[4][0] == '[') ? field[4] : "[U]";
    if (!strchr(flags, ']')) {
        cc__fmt(detail, dl, "account store \"%s\" line %lu: flags field lacks ']'", path, lineno);
        lk->rc = CC_ERR_CONFIG;
        return LINE_DONE;
    }
    int h = parse_hash(field[3], strlen(field[3]), lk->nt_hash);
    if (h < 0) {
        cc__fmt(detail, dl, "account store \"%s\" line %lu: NT hash is not 32 hex digits", path, lineno);
        lk->rc = CC_ERR_CONFIG;
    } else if (strpbrk(flags, "DL")) {
        cc__fmt(detail, dl, "account \"%s\" is %s in the local account store", field[0],
                strchr(flags, 'D') ? "disabled (D flag)" : "locked (L flag)");
        lk->rc = CC_ERR_AUTH_DISABLED;
    } else if (!strchr(flags, 'U')) {
        cc__fmt(detail, dl, "account \"%s\" is not a user account (flags %s)", field[0], flags);
        lk->rc = CC_ERR_AUTH_UNKNOWN_USER;
    } else if (h == 1) {
        cc__fmt(detail, dl, "account \"%s\" has no NT hash in the local account store", field[0]);
        lk->rc = CC_ERR_AUTH_DISABLED;
    } else {
        lk->rc = 0;
        detail[0] = '\0';
    }
    return LINE_DONE;
}

/* The file holds every account's NT hash, so it is read with read(2) into
 * buffers on this stack that are wiped before returning: stdio would leave
 * its (heap) buffer, the whole file, behind in freed memory. */
int cc__nt_store_lookup(const char *path, const char *user, uint8_t nt_hash[16], char *canonical, size_t canonical_len,
                        char *detail, size_t dl)
{
    char chunk[CHUNK_BYTES], line[LINE_MAX_BYTES + 1];
    size_t ll = 0;
    bool too_long = false, done = false;
    struct lookup lk = {path, user, nt_hash, canonical, detail, canonical_len, dl, 0, CC_ERR_AUTH_UNKNOWN_USER};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cc__fmt(detail, dl, "cannot open the account store \"%s\": %s", path, strerror(errno));
        return CC_ERR_CONFIG;
    }
    cc__fmt(detail, dl, "account \"%s\" is not in the local account store", user);
    while (!done) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cc__fmt(detail, dl, "cannot read the account store \"%s\": %s", path, strerror(errno));
            lk.rc = CC_ERR_CONFIG;
            break;
        }
        /* at the end of the file, a last line without its newline */
        size_t end = n > 0 ? (size_t)n : 1;
        for (size_t i = 0; i < end && !done; i++) {
            bool eol = n == 0 || chunk[i] == '\n';
            if (!eol) {
                if (ll < LINE_MAX_BYTES)
                    line[ll++] = chunk[i];
                else
                    too_long = true;
                continue;
            }
            if (n == 0 && ll == 0 && !too_long)
                break;
            if (++lk.lineno > MAX_LINES || too_long) {
                cc__fmt(detail, dl, "account store \"%s\" line %lu is longer than %d bytes", path, lk.lineno,
                        LINE_MAX_BYTES);
                lk.rc = CC_ERR_CONFIG;
                done = true;
                break;
            }
            line[ll] = '\0';
            done = one_line(&lk, line, ll) == LINE_DONE;
            cc__wipe(line, ll);
            ll = 0;
        }
        if (n == 0)
            break;
    }
    cc__wipe(chunk, sizeof chunk);
    cc__wipe(line, sizeof line);
    close(fd);
    if (lk.rc != 0)
        cc__wipe(nt_hash, 16);
    return lk.rc;
}
