/* cc-console.c -- the technician's side: connects to a client on port 1680
 * through the whole connection process; a diagnostic tool support staff run. */
#define _GNU_SOURCE
#include "common.h"
#include "psk.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: cc-console HOST[:PORT] [options]\n"
                            "  connects to a Carbon Copy client (port 1680 unless given) and reports each step\n"
                            "certificate (pick one; default: the system CA store):\n"
                            "  --ca FILE              trust client certificates issued by the CAs in FILE\n"
                            "  --pin SHA256HEX        trust exactly the certificate with this SHA-256 fingerprint\n"
                            "authentication:\n"
                            "  --auth MECH            psk, nt or kerberos (repeatable; order = preference)\n"
                            "  --psk-file FILE        pre-shared key for psk\n"
                            "  --user NAME            user (nt), principal (kerberos) or name (psk)\n"
                            "  --domain DOMAIN        NT domain\n"
                            "  --password-file FILE   password for nt, or for kerberos instead of the ticket cache\n"
                            "  --service PRINCIPAL    kerberos service principal (default host/HOST@REALM)\n"
                            "session:\n"
                            "  --send FILE            send FILE on channel 1 and check that the echo matches\n"
                            "  --timeout MS           handshake deadline (default 30000)\n"
                            "  --json                 one JSON object per line per event on stdout\n"
                            "  --trace                print each step with its duration on stderr\n"
                            "exit codes: 0 ok, 2 usage, 3 resolve/connect, 4 TLS/certificate, 5 licence,\n"
                            "            6 authentication, 7 timeout, 8 protocol\n";

struct app {
    bool json, trace;
    double t0, t_last;
    FILE *send_f, *check_f;
    long long send_size, sent, echoed;
    bool send_done, mismatch, closing, blocked;
    int result;
};

static void on_event(void *user, cc_session *s, const cc_event *ev)
{
    struct app *a = user;
    double now = ex_now_ms();
    switch (ev->type) {
    case CC_EVENT_STATE:
        if (a->trace)
            fprintf(stderr, "[%9.3f ms] %-15s (+%.3f ms)\n", now - a->t0, cc_state_name(ev->state), now - a->t_last);
        a->t_last = now;
        if (a->json) {
            printf("{\"event\":\"state\",\"state\":\"%s\",\"ms\":%.3f}\n", cc_state_name(ev->state), now - a->t0);
            if (ev->state == CC_STATE_ESTABLISHED) {
                printf("{\"event\":\"established\",\"mechanism\":");
                ex_json_string(stdout, cc_session_mechanism(s));
                printf(",\"tls\":");
                ex_json_string(stdout, cc_session_tls_version(s));
                printf(",\"cipher\":");
                ex_json_string(stdout, cc_session_tls_cipher(s));
                printf(",\"ms\":%.3f}\n", now - a->t0);
            }
        }
        break;
    case CC_EVENT_LICENSE:
        if (a->json) {
            printf("{\"event\":\"license\",\"count\":%u,\"in_use\":%u,\"granted\":%s", ev->license_count,
                   ev->license_in_use, ev->granted ? "true" : "false");
            if (!ev->granted) {
                printf(",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
                ex_json_string(stdout, ev->text);
            }
            printf("}\n");
        } else if (ev->granted) {
            fprintf(stderr, "licence granted: %u of %u in use\n", ev->license_in_use, ev->license_count);
        }
        break;
    case CC_EVENT_AUTH:
        if (a->json) {
            printf("{\"event\":\"auth\",\"mechanism\":");
            ex_json_string(stdout, ev->mechanism);
            printf(",\"ok\":%s,\"%s\":", ev->code ? "false" : "true", ev->code ? "message" : "identity");
            ex_json_string(stdout, ev->text);
            printf("}\n");
        } else if (!ev->code) {
            fprintf(stderr, "authenticated by %s as %s\n", ev->mechanism, ev->text);
        }
        break;
    case CC_EVENT_DATA:
        if (a->check_f) {
            unsigned char buf[16384];
            size_t n = fread(buf, 1, ev->len, a->check_f);
            if (n != ev->len || memcmp(buf, ev->data, ev->len) != 0)
                a->mismatch = true;
            a->echoed += (long long)ev->len;
        }
        break;
    case CC_EVENT_SEND_READY:
        a->blocked = false;
        break;
    case CC_EVENT_CLOSED:
        if (a->json && ev->code) {
            printf("{\"event\":\"error\",\"code\":\"%s\",\"message\":", cc_err_name(ev->code));
            ex_json_string(stdout, ev->text);
            printf("}\n");
        } else if (a->json) {
            printf("{\"event\":\"closed\",\"reason\":");
            ex_json_string(stdout, ev->text);
            printf("}\n");
        }
        break;
    default:
        break;
    }
    fflush(stdout);
}

/* Queues as much of the file as the send buffer takes. */
static void feed_file(struct app *a, cc_session *s)
{
    static unsigned char buf[65536];
    while (a->send_f && !a->send_done && !a->blocked) {
        size_t n = fread(buf, 1, sizeof buf, a->send_f);
        if (n == 0) {
            a->send_done = true;
            break;
        }
        int r = cc_session_send(s, 1, buf, n);
        if (r == CC_ERR_AGAIN) {
            fseek(a->send_f, -(long)n, SEEK_CUR);
            a->blocked = true;
            return;
        }
        if (r < 0) {
            fprintf(stderr, "send failed: %s\n", cc_strerror(r));
            a->send_done = true;
            return;
        }
        a->sent += (long long)n;
        if (r == CC_SEND_HIGH_WATER) {
            a->blocked = true; /* until CC_EVENT_SEND_READY */
            return;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"ca", required_argument, 0, 'c'},
                                         {"pin", required_argument, 0, 'p'},
                                         {"auth", required_argument, 0, 'a'},
                                         {"psk-file", required_argument, 0, 'k'},
                                         {"user", required_argument, 0, 'u'},
                                         {"domain", required_argument, 0, 'd'},
                                         {"password-file", required_argument, 0, 'w'},
                                         {"service", required_argument, 0, 'S'},
                                         {"send", required_argument, 0, 's'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"trace", no_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *ca = NULL, *pin = NULL, *psk_file = NULL, *user = NULL, *domain = NULL, *pw_file = NULL,
               *service = NULL, *send_file = NULL;
    const char *mechs[8];
    int n_mechs = 0;
    unsigned long timeout = 0;
    struct app a = {0};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            ca = optarg;
            break;
        case 'p':
            pin = optarg;
            break;
        case 'a':
            if (n_mechs == 8 || (strcmp(optarg, "psk") && strcmp(optarg, "nt") && strcmp(optarg, "kerberos"))) {
                fprintf(stderr, "cc-console: --auth takes psk, nt or kerberos\n");
                return EX_USAGE;
            }
            mechs[n_mechs++] = optarg;
            break;
        case 'k':
            psk_file = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'd':
            domain = optarg;
            break;
        case 'w':
            pw_file = optarg;
            break;
        case 'S':
            service = optarg;
            break;
        case 's':
            send_file = optarg;
            break;
        case 't':
            if (!ex_ms_option("cc-console", "timeout", optarg, &timeout))
                return EX_USAGE;
            break;
        case 'j':
            a.json = true;
            break;
        case 'T':
            a.trace = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return EX_OK;
        default:
            fputs(usage, stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc - 1 || (ca && pin)) {
        fputs(usage, stderr);
        return EX_USAGE;
    }
    char *host = NULL;
    unsigned port = 0;
    if (!ex_split_host_port(argv[optind], &host, &port) || port == 0) {
        fprintf(stderr, "cc-console: cannot parse \"%s\" as HOST[:PORT]\n", argv[optind]);
        return EX_USAGE;
    }
    if (n_mechs == 0)
        mechs[n_mechs++] = psk_file ? "psk" : "kerberos";

    int err, rc = EX_OK;
    cc_context *ctx = cc_context_new(CC_ROLE_CONSOLE, NULL, &err);
    cc_session *s = NULL;
    char *password = NULL;
    size_t pw_len = 0;
    if (!ctx) {
        fprintf(stderr, "cc-console: %s\n", cc_strerror(err));
        free(host);
        return EX_PROTOCOL;
    }
#define CHECK(call, code)                                                                                              \
    do {                                                                                                               \
        if (ex_config_failed("cc-console", ctx, (call))) {                                                             \
            rc = (code);                                                                                               \
            goto out;                                                                                                  \
        }                                                                                                              \
    } while (0)
    if (ca)
        CHECK(cc_context_set_ca_file(ctx, ca), EX_TLS);
    if (pin)
        CHECK(cc_context_set_pin_sha256(ctx, pin), EX_USAGE);
    if (timeout)
        CHECK(cc_context_set_timeout(ctx, CC_TIMEOUT_HANDSHAKE, (uint32_t)timeout), EX_USAGE);
    for (int i = 0; i < n_mechs; i++) {
        if (strcmp(mechs[i], "psk") == 0) {
            if (!psk_file) {
                fprintf(stderr, "cc-console: --auth psk needs --psk-file\n");
                rc = EX_USAGE;
                goto out;
            }
            if (psk_register(ctx, psk_file) < 0) {
                rc = EX_USAGE;
                goto out;
            }
        } else {
            CHECK(cc_context_add_builtin_authenticator(ctx, mechs[i]), EX_AUTH);
            if (service && strcmp(mechs[i], "kerberos") == 0)
                CHECK(cc_context_set_auth_option(ctx, "kerberos", "service", service), EX_USAGE);
        }
    }
    if (pw_file && !(password = ex_read_secret(pw_file, &pw_len))) {
        rc = EX_USAGE;
        goto out;
    }
    s = cc_session_new(ctx, &err);
    if (!s) {
        fprintf(stderr, "cc-console: %s: %s\n", cc_strerror(err), cc_context_errmsg(ctx));
        rc = ex_exit_code(err);
        goto out;
    }
    if (user || password)
        CHECK(cc_session_set_credentials(s, user ? user : "", domain, password), EX_USAGE);
    ex_wipe_free(password, pw_len);
    password = NULL;
    if (send_file) {
        a.send_f = fopen(send_file, "rb");
        a.check_f = fopen(send_file, "rb");
        if (!a.send_f || !a.check_f) {
            fprintf(stderr, "cc-console: cannot open %s: %s\n", send_file, strerror(errno));
            rc = EX_USAGE;
            goto out;
        }
        fseek(a.send_f, 0, SEEK_END);
        a.send_size = ftell(a.send_f);
        rewind(a.send_f);
    }
    cc_session_set_event_callback(s, on_event, &a);
    a.t0 = a.t_last = ex_now_ms();
    CHECK(cc_session_connect(s, host, port == EX_NO_PORT ? CC_DEFAULT_PORT : (uint16_t)port), EX_USAGE);

    ex_jobs q;
    if (ex_jobs_init(&q) < 0) {
        perror("pipe");
        rc = EX_PROTOCOL;
        goto out;
    }
    for (;;) {
        int r = ex_pump(&q, s, 1, NULL, NULL);
        if (r <= 0) {
            rc = r == 0 ? EX_OK : ex_exit_code(r);
            if (r < 0 && !a.json)
                fprintf(stderr, "cc-console: %s: %s\n", cc_strerror(r), cc_session_errmsg(s));
            break;
        }
        if (cc_session_state(s) == CC_STATE_ESTABLISHED && !a.closing) {
            feed_file(&a, s);
            if (a.mismatch || !a.send_f || (a.send_done && a.echoed >= a.sent)) {
                a.closing = true;
                if (a.mismatch)
                    fprintf(stderr, "cc-console: the echo differs from the data sent\n");
                else if (a.send_f && !a.json)
                    fprintf(stderr, "sent %lld bytes, echo verified\n", a.sent);
                cc_session_close(s, 0, a.mismatch ? "echo mismatch" : "done");
                continue;
            }
            r = cc_session_step(s);
            if (r <= 0 || a.mismatch || (a.send_done && a.echoed >= a.sent) || (!a.blocked && !a.send_done))
                continue; /* events of that step may have finished the transfer or freed buffer space */
        }
        struct pollfd p[2] = {{cc_session_fd(s), 0, 0}, {ex_jobs_fd(&q), POLLIN, 0}};
        if (r & CC_WANT_READ)
            p[0].events |= POLLIN;
        if (r & CC_WANT_WRITE)
            p[0].events |= POLLOUT;
        if (p[0].fd < 0)
            p[0].events = 0;
        if (poll(p, 2, cc_session_timeout_ms(s)) < 0 && errno != EINTR) {
            perror("poll");
            rc = EX_PROTOCOL;
            break;
        }
        cc_job *j;
        unsigned long long id;
        while (ex_jobs_next(&q, &j, &id))
            cc_session_job_done(s, j);
    }
    if (rc == EX_OK && a.mismatch)
        rc = EX_PROTOCOL;
    cc_session_free(s);
    s = NULL;
    /* Wait for workers still running (their jobs are freed, not handed back). */
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
    ex_wipe_free(password, pw_len);
    cc_session_free(s);
    cc_context_free(ctx);
    if (a.send_f)
        fclose(a.send_f);
    if (a.check_f)
        fclose(a.check_f);
    free(host);
    return rc;
}
