/* cc-client.c -- the managed machine's side: accepts consoles on port 1680
 * and serves many at once on one poll() loop; jobs run on worker threads. */
#define _GNU_SOURCE
#include "common.h"
#include "psk.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256

static const char usage[] =
    "usage: cc-client --listen HOST:PORT --cert FILE --key FILE [options]\n"
    "  serves Carbon Copy consoles: licence check, authentication, data\n"
    "authentication (at least one):\n"
    "  --auth psk --psk-file FILE     the example pre-shared-key mechanism\n"
    "  --accounts FILE                NT security: smbpasswd-format account store\n"
    "    --dc-realm REALM             ask this realm's KDC whether the account exists\n"
    "    --krb5-conf FILE             krb5.conf locating that KDC\n"
    "    --dc-check MODE              required (default), best-effort or off\n"
    "  --keytab FILE                  Active Directory (Kerberos) with this keytab\n"
    "    --service PRINCIPAL          accept only this service principal\n"
    "    --realm REALM                accept principals of this realm only\n"
    "licence (one of):\n"
    "  --license-url URL              the licence-details page\n"
    "  --ns NAME                      management server: http://NAME/altiris/NS/Agent/GetLicenseDetails.aspx\n"
    "  --license-file FILE            answer licence checks from a saved page (testing)\n"
    "  --license-ca FILE              CA file for an https licence URL\n"
    "  --license-timeout MS           whole licence fetch deadline (default 10000)\n"
    "behaviour:\n"
    "  --echo                         send back the data each console sends\n"
    "  --once                         exit after the first session ends (its exit code)\n"
    "  --timeout MS                   handshake deadline (default 30000)\n"
    "  --json                         one JSON object per line per event on stdout\n";

struct conn {
    cc_session *s;
    unsigned long long id;
    int mask;
};

struct app {
    bool echo, json, once;
    const char *license_file;
    struct conn conns[MAX_CONNS];
    unsigned long long next_id;
};

static void json_head(unsigned long long id, const char *event)
{
    printf("{\"event\":\"%s\",\"session\":%llu", event, id);
}

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct app *a = user;
    struct conn *c = cc_session_user_data(s);
    switch (ev->type) {
    case CC_EVENT_DATA:
        if (a->echo) {
            /* Back-pressure: stop reading while the echo cannot be sent as fast. */
            int r = cc_session_send(s, (uint16_t)ev->channel, ev->data, ev->len);
            if (r == CC_SEND_HIGH_WATER)
                cc_session_pause_reading(s, 1);
            else if (r < 0)
                cc_session_close(s, r, "echo buffer overflow");
        }
        return;
    case CC_EVENT_SEND_READY:
        cc_session_pause_reading(s, 0);
        return;
    case CC_EVENT_LICENSE:
        if (a->json) {
            json_head(c->id, "license");
            printf(",\"count\":%u,\"in_use\":%u,\"granted\":%s", ev->license_count, ev->license_in_use,
                   ev->granted ? "true" : "false");
            if (!ev->granted) {
                printf(",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
                ex_json_string(stdout, ev->text);
            }
            printf("}\n");
        } else {
            fprintf(stderr, "session %llu: licence %s: %s\n", c->id, ev->granted ? "granted" : "denied",
                    ev->granted ? "" : ev->text);
        }
        break;
    case CC_EVENT_AUTH:
        if (a->json) {
            json_head(c->id, "auth");
            printf(",\"mechanism\":");
            ex_json_string(stdout, ev->mechanism);
            printf(",\"ok\":%s,\"%s\":", ev->code ? "false" : "true", ev->code ? "message" : "identity");
            ex_json_string(stdout, ev->text);
            if (ev->code)
                printf(",\"code\":\"%s\"", cc_err_name(ev->code));
            printf("}\n");
        } else {
            fprintf(stderr, "session %llu: %s %s: %s\n", c->id, ev->mechanism, ev->code ? "refused" : "authenticated",
                    ev->text);
        }
        break;
    case CC_EVENT_STATE:
        if (a->json && ev->state == CC_STATE_ESTABLISHED) {
            json_head(c->id, "established");
            printf(",\"identity\":");
            ex_json_string(stdout, cc_session_identity(s));
            printf("}\n");
        }
        break;
    case CC_EVENT_CLOSED:
        if (a->json) {
            json_head(c->id, ev->code ? "error" : "closed");
            if (ev->code)
                printf(",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
            else
                printf(",\"reason\":");
            ex_json_string(stdout, ev->text);
            printf("}\n");
        } else if (ev->code) {
            fprintf(stderr, "session %llu: %s: %s\n", c->id, cc_strerror(ev->code), ev->text);
        }
        break;
    default:
        return;
    }
    fflush(stdout);
}

/* --license-file: the host answers the licence job itself with a saved page. */
static bool answer_license(void *user, cc_job *job)
{
    struct app *a = user;
    if (!a->license_file || cc_job_type(job) != CC_JOB_LICENSE)
        return false;
    FILE *f = fopen(a->license_file, "rb");
    if (!f) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot open licence file %s: %s", a->license_file, strerror(errno));
        cc_job_fail(job, CC_ERR_LICENSE_UNREACHABLE, msg);
        return true;
    }
    char buf[4096];
    size_t n;
    cc_job_license_set_status(job, 200);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (cc_job_license_feed(job, buf, n) < 0)
            break;
    fclose(f);
    return true;
}

static int listen_on(const char *spec)
{
    char *host = NULL;
    unsigned port = 0;
    if (!ex_split_host_port(spec, &host, &port)) {
        fprintf(stderr, "cc-client: cannot parse --listen \"%s\" as HOST:PORT\n", spec);
        return -1;
    }
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port == EX_NO_PORT ? CC_DEFAULT_PORT : port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int r = getaddrinfo(host, ps, &hints, &res);
    free(host);
    if (r != 0) {
        fprintf(stderr, "cc-client: cannot resolve %s: %s\n", spec, gai_strerror(r));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        fprintf(stderr, "cc-client: cannot listen on %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* The address actually bound (port 0 picks a free one), e.g. "127.0.0.1:40123". */
static void bound_address(int fd, char *buf, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char h[NI_MAXHOST] = "?", p[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(buf, n, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, 0, 'l'},
                                         {"cert", required_argument, 0, 'c'},
                                         {"key", required_argument, 0, 'k'},
                                         {"auth", required_argument, 0, 'a'},
                                         {"psk-file", required_argument, 0, 'P'},
                                         {"accounts", required_argument, 0, 'A'},
                                         {"dc-realm", required_argument, 0, 'D'},
                                         {"krb5-conf", required_argument, 0, 'K'},
                                         {"dc-check", required_argument, 0, 'M'},
                                         {"keytab", required_argument, 0, 'y'},
                                         {"service", required_argument, 0, 'S'},
                                         {"realm", required_argument, 0, 'R'},
                                         {"license-url", required_argument, 0, 'u'},
                                         {"ns", required_argument, 0, 'n'},
                                         {"license-file", required_argument, 0, 'f'},
                                         {"license-ca", required_argument, 0, 'C'},
                                         {"license-timeout", required_argument, 0, 'L'},
                                         {"echo", no_argument, 0, 'e'},
                                         {"once", no_argument, 0, 'o'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *listen_spec = NULL, *cert = NULL, *key = NULL, *psk_file = NULL, *accounts = NULL, *dc_realm = NULL,
               *krb5_conf = NULL, *dc_check = NULL, *keytab = NULL, *service = NULL, *realm = NULL, *license_url = NULL,
               *ns = NULL, *license_ca = NULL;
    unsigned long license_timeout = 0, timeout = 0;
    bool want_psk = false;
    static struct app a;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen_spec = optarg;
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            if (strcmp(optarg, "psk") == 0) {
                want_psk = true;
                break;
            }
            fprintf(stderr, "cc-client: --auth takes psk (nt and kerberos are enabled by --accounts and --keytab)\n");
            return EX_USAGE;
        case 'P':
            psk_file = optarg;
            break;
        case 'A':
            accounts = optarg;
            break;
        case 'D':
            dc_realm = optarg;
            break;
        case 'K':
            krb5_conf = optarg;
            break;
        case 'M':
            dc_check = optarg;
            break;
        case 'y':
            keytab = optarg;
            break;
        case 'S':
            service = optarg;
            break;
        case 'R':
            realm = optarg;
            break;
        case 'u':
            license_url = optarg;
            break;
        case 'n':
            ns = optarg;
            break;
        case 'f':
            a.license_file = optarg;
            break;
        case 'C':
            license_ca = optarg;
            break;
        case 'L':
            if (!ex_ms_option("cc-client", "license-timeout", optarg, &license_timeout))
                return EX_USAGE;
            break;
        case 't':
            if (!ex_ms_option("cc-client", "timeout", optarg, &timeout))
                return EX_USAGE;
            break;
        case 'e':
            a.echo = true;
            break;
        case 'o':
            a.once = true;
            break;
        case 'j':
            a.json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return EX_OK;
        default:
            fputs(usage, stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc || !listen_spec || !cert || !key || (!!license_url + !!ns + !!a.license_file) > 1 ||
        (want_psk && !psk_file)) {
        fputs(usage, stderr);
        return EX_USAGE;
    }
    /* Options that would silently do nothing are mistakes worth saying so. */
    const char *orphan = !accounts && dc_realm    ? "--dc-realm needs --accounts"
                         : !accounts && krb5_conf ? "--krb5-conf needs --accounts"
                         : !accounts && dc_check  ? "--dc-check needs --accounts"
                         : !keytab && service     ? "--service needs --keytab"
                         : !keytab && realm       ? "--realm needs --keytab"
                         : !want_psk && psk_file  ? "--psk-file needs --auth psk"
                         : !want_psk && !accounts && !keytab
                             ? "no authentication configured: give --accounts, --keytab or --auth psk"
                             : NULL;
    if (orphan) {
        fprintf(stderr, "cc-client: %s\n", orphan);
        return EX_USAGE;
    }
    {
        char *h = NULL;
        unsigned pt;
        if (!ex_split_host_port(listen_spec, &h, &pt)) {
            fprintf(stderr, "cc-client: cannot parse --listen \"%s\" as HOST:PORT\n", listen_spec);
            return EX_USAGE;
        }
        free(h);
    }
    signal(SIGPIPE, SIG_IGN);

    int err, rc = EX_OK, lfd = -1;
    cc_context *ctx = cc_context_new(CC_ROLE_CLIENT, NULL, &err);
    if (!ctx) {
        fprintf(stderr, "cc-client: %s\n", cc_strerror(err));
        return EX_PROTOCOL;
    }
#define CHECK(call, code)                                                                                              \
    do {                                                                                                               \
        if (ex_config_failed("cc-client", ctx, (call))) {                                                              \
            rc = (code);                                                                                               \
            goto out;                                                                                                  \
        }                                                                                                              \
    } while (0)
    CHECK(cc_context_set_certificate(ctx, cert, key), EX_TLS);
    if (timeout)
        CHECK(cc_context_set_timeout(ctx, CC_TIMEOUT_HANDSHAKE, (uint32_t)timeout), EX_USAGE);
    if (license_url)
        CHECK(cc_context_set_license_url(ctx, license_url), EX_USAGE);
    if (ns)
        CHECK(cc_context_set_license_server(ctx, ns), EX_USAGE);
    if (license_ca)
        CHECK(cc_context_set_license_ca_file(ctx, license_ca), EX_USAGE);
    if (license_timeout)
        CHECK(cc_context_set_timeout(ctx, CC_TIMEOUT_LICENSE, (uint32_t)license_timeout), EX_USAGE);
    if (keytab) {
        CHECK(cc_context_add_builtin_authenticator(ctx, "kerberos"), EX_AUTH);
        CHECK(cc_context_set_auth_option(ctx, "kerberos", "keytab", keytab), EX_USAGE);
        if (service)
            CHECK(cc_context_set_auth_option(ctx, "kerberos", "service", service), EX_USAGE);
        if (realm)
            CHECK(cc_context_set_auth_option(ctx, "kerberos", "realm", realm), EX_USAGE);
    }
    if (accounts) {
        CHECK(cc_context_add_builtin_authenticator(ctx, "nt"), EX_AUTH);
        CHECK(cc_context_set_auth_option(ctx, "nt", "accounts", accounts), EX_USAGE);
        if (dc_realm)
            CHECK(cc_context_set_auth_option(ctx, "nt", "realm", dc_realm), EX_USAGE);
        if (krb5_conf)
            CHECK(cc_context_set_auth_option(ctx, "nt", "krb5-conf", krb5_conf), EX_USAGE);
        if (dc_check)
            CHECK(cc_context_set_auth_option(ctx, "nt", "dc-check", dc_check), EX_USAGE);
    }
    if (want_psk && psk_register(ctx, psk_file) < 0) {
        rc = EX_USAGE;
        goto out;
    }
    if ((lfd = listen_on(listen_spec)) < 0) {
        rc = EX_CONNECT;
        goto out;
    }
    char where[128];
    bound_address(lfd, where, sizeof where);
    if (a.json) {
        printf("{\"event\":\"listening\",\"address\":");
        ex_json_string(stdout, where);
        printf("}\n");
        fflush(stdout);
    } else {
        fprintf(stderr, "cc-client: listening on %s\n", where);
    }

    ex_jobs q;
    if (ex_jobs_init(&q) < 0) {
        perror("pipe");
        rc = EX_PROTOCOL;
        goto out;
    }
    bool stop = false;
    while (!stop) {
        struct pollfd p[MAX_CONNS + 2];
        int idx[MAX_CONNS + 2], n = 0;
        int32_t wait = -1;
        p[n] = (struct pollfd){lfd, POLLIN, 0};
        idx[n++] = -1;
        p[n] = (struct pollfd){ex_jobs_fd(&q), POLLIN, 0};
        idx[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *cn = &a.conns[i];
            if (!cn->s)
                continue;
            int32_t t = cc_session_timeout_ms(cn->s);
            if (t >= 0 && (wait < 0 || t < wait))
                wait = t;
            short ev = (short)((cn->mask & CC_WANT_READ ? POLLIN : 0) | (cn->mask & CC_WANT_WRITE ? POLLOUT : 0));
            int fd = cc_session_fd(cn->s);
            if (fd >= 0 && ev) {
                p[n] = (struct pollfd){fd, ev, 0};
                idx[n++] = i;
            }
        }
        if (poll(p, (nfds_t)n, wait) < 0 && errno != EINTR) {
            perror("poll");
            rc = EX_PROTOCOL;
            break;
        }
        /* New consoles. */
        if (p[0].revents & POLLIN) {
            int fd;
            while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
                int slot = -1;
                for (int i = 0; i < MAX_CONNS && slot < 0; i++)
                    if (!a.conns[i].s)
                        slot = i;
                cc_session *s = slot >= 0 ? cc_session_new(ctx, &err) : NULL;
                if (!s || cc_session_accept_fd(s, fd) < 0) {
                    fprintf(stderr, "cc-client: refusing a console: %s\n",
                            slot < 0 ? "too many sessions" : cc_strerror(err));
                    if (s)
                        cc_session_free(s);
                    else
                        close(fd);
                    continue;
                }
                struct conn *cn = &a.conns[slot];
                cn->s = s;
                cn->id = ++a.next_id;
                cn->mask = CC_WANT_READ | CC_WANT_WRITE;
                cc_session_set_user_data(s, cn);
                cc_session_set_event_callback(s, on_event, &a);
            }
        }
        /* Finished jobs go back to their sessions, if those still exist. */
        cc_job *j;
        unsigned long long id;
        while (ex_jobs_next(&q, &j, &id)) {
            struct conn *owner = NULL;
            for (int i = 0; i < MAX_CONNS && !owner; i++)
                if (a.conns[i].s && a.conns[i].id == id)
                    owner = &a.conns[i];
            if (owner)
                cc_session_job_done(owner->s, j);
            else
                cc_job_free(j);
        }
        /* Step every session: cheap when nothing is ready, and it enforces deadlines. */
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *cn = &a.conns[i];
            if (!cn->s)
                continue;
            int r = ex_pump(&q, cn->s, cn->id, answer_license, &a);
            cn->mask = r;
            if (r <= 0) {
                cc_session_free(cn->s);
                cn->s = NULL;
                if (a.once) {
                    rc = ex_exit_code(r);
                    stop = true;
                }
            }
        }
        (void)idx;
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (a.conns[i].s)
            cc_session_free(a.conns[i].s), a.conns[i].s = NULL;
    while (q.out > 0) {
        struct pollfd p = {ex_jobs_fd(&q), POLLIN, 0};
        poll(&p, 1, 1000);
        cc_job *j;
        unsigned long long id;
        while (ex_jobs_next(&q, &j, &id))
            cc_job_free(j);
    }
    ex_jobs_close(&q);
out:
    if (lfd >= 0)
        close(lfd);
    cc_context_free(ctx);
    return rc;
}
