/* test-priority.c -- the send order and flow control (doc/PROTOCOL.md 10): a
 * console and a client in one process; the receiving side logs the order in
 * which frames reach it. No timings are asserted, only orders and counts. */
#define _GNU_SOURCE
#include "harness.h"
#include "pair.h"

#include "../examples/psk.h"
#include "../lib/core/session.h"

#include <carboncopy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW (256u * 1024) /* the initial window, PROTOCOL.md 10 */
/* What fits in it of a bulk send: whole frames of 16376 bytes (a frame never waits half sent). */
#define WINDOW_FRAMES (WINDOW / 16376 * 16376)

static char pskfile[600];

static cc_context *client_ctx(void)
{
    return tp_psk_context(CC_ROLE_CLIENT, pskfile);
}

static cc_context *console_ctx(void)
{
    return tp_psk_context(CC_ROLE_CONSOLE, pskfile);
}

/* What one side saw, in order. */
#define LOG_MAX 4096
struct seen {
    struct tp_side *sd;
    int n;
    struct {
        int type;
        uint32_t channel;
        size_t len;
        size_t bulk_before; /* bytes of channel 1 received before this event */
    } e[LOG_MAX];
    size_t per_channel[4];
    bool pause_at_window; /* pause channel 1 from within the callback */
};

static void logging_event(void *user, cc_session *s, const cc_event *ev)
{
    struct seen *w = user;
    if (w->n < LOG_MAX && (ev->type == CC_EVENT_DATA || ev->type == CC_EVENT_PONG || ev->type == CC_EVENT_CLOSED)) {
        w->e[w->n].type = ev->type;
        w->e[w->n].channel = ev->channel;
        w->e[w->n].len = ev->len;
        w->e[w->n].bulk_before = w->per_channel[1];
        w->n++;
    }
    if (ev->type == CC_EVENT_DATA && ev->channel < 4)
        w->per_channel[ev->channel] += ev->len;
    tp_on_event(w->sd, s, ev);
}

static struct seen con_seen, cli_seen;

static size_t send_limit; /* the console's CC_LIMIT_SEND_BUFFER when set */

static bool pair_start(struct tp_pair *p)
{
    /* Room for a few MiB of bulk unless the test sets a smaller queue. */
    p->cctx = console_ctx();
    p->sctx = client_ctx();
    if (cc_context_set_limit(p->cctx, CC_LIMIT_SEND_BUFFER, send_limit ? send_limit : 16u << 20) != CC_OK ||
        cc_context_set_limit(p->sctx, CC_LIMIT_SEND_BUFFER, 16u << 20) != CC_OK)
        return false;
    send_limit = 0;
    p->cli.lic_count = 25;
    p->cli.lic_in_use = 7;
    p->cli.drop_rx = true;
    p->con.drop_rx = true;
    if (tp_pair_open(p, "tester", NULL) != 0)
        return false;
    memset(&con_seen, 0, sizeof con_seen);
    memset(&cli_seen, 0, sizeof cli_seen);
    con_seen.sd = &p->con;
    cli_seen.sd = &p->cli;
    cc_session_set_event_callback(p->con.s, logging_event, &con_seen);
    cc_session_set_event_callback(p->cli.s, logging_event, &cli_seen);
    return tp_drive(&p->con, &p->cli, tp_both_established, 5000) &&
           cc_session_state(p->con.s) == CC_STATE_ESTABLISHED && cc_session_state(p->cli.s) == CC_STATE_ESTABLISHED;
}

static size_t want_bytes;
static bool cli_has_bulk(struct tp_side *a, struct tp_side *b)
{
    return cli_seen.per_channel[1] >= want_bytes || a->ended || b->ended;
}
static bool cli_has_ch0(struct tp_side *a, struct tp_side *b)
{
    return cli_seen.per_channel[0] >= want_bytes || a->ended || b->ended;
}
static bool con_has_pong(struct tp_side *a, struct tp_side *b)
{
    return a->pongs > 0 || a->ended || b->ended;
}

static unsigned char big[4u << 20];

static int find_event(const struct seen *w, int type, uint32_t channel)
{
    for (int i = 0; i < w->n; i++)
        if (w->e[i].type == type && (type != CC_EVENT_DATA || w->e[i].channel == channel))
            return i;
    return -1;
}

static void t_ping_and_interactive_overtake_bulk(void)
{
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    T_EQ(cc_session_set_channel_priority(p.con.s, 0, CC_PRIORITY_INTERACTIVE), CC_OK);
    T_EQ(cc_session_set_channel_priority(p.con.s, 0, 7), CC_ERR_INVALID);
    size_t total = 3u << 20;
    T_ASSERT(cc_session_send(p.con.s, 1, big, total) >= 0);
    /* Let part of the bulk through, then ask for a round trip and send a keystroke. */
    want_bytes = 128 * 1024;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_bulk, 10000));
    size_t at_send = cli_seen.per_channel[1];
    T_ASSERT(at_send < total);
    T_EQ(cc_session_ping(p.con.s), CC_OK);
    T_EQ(cc_session_send(p.con.s, 0, "k", 1), CC_OK);
    want_bytes = total;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_bulk, 20000));
    T_EQ(cli_seen.per_channel[1], total);
    int key = find_event(&cli_seen, CC_EVENT_DATA, 0);
    T_ASSERT(key >= 0);
    /* Behind the keystroke: at most what was in flight (the window) and the records sealed ahead. */
    T_ASSERT(cli_seen.e[key].bulk_before < total);
    T_ASSERT(cli_seen.e[key].bulk_before <= at_send + WINDOW + 64 * 1024);
    T_ASSERT(tp_drive(&p.con, &p.cli, con_has_pong, 5000));
    tp_pair_free(&p);
}

static void t_pong_before_bulk(void)
{
    /* The client has bulk queued for the console when the console's ping
     * arrives: its PONG overtakes that bulk. */
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    size_t total = 2u << 20;
    T_ASSERT(cc_session_send(p.cli.s, 1, big, total) >= 0);
    T_EQ(cc_session_ping(p.con.s), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, con_has_pong, 10000));
    int pong = find_event(&con_seen, CC_EVENT_PONG, 0);
    T_ASSERT(pong >= 0);
    T_ASSERT(con_seen.e[pong].bulk_before < total);
    T_ASSERT(con_seen.e[pong].bulk_before <= WINDOW + 64 * 1024);
    tp_pair_free(&p);
}

static void t_orderly_close_after_queued_data(void)
{
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    size_t total = 1u << 20; /* four windows: the close waits for the grants */
    T_ASSERT(cc_session_send(p.con.s, 1, big, total) >= 0);
    T_EQ(cc_session_close(p.con.s, 0, "done"), CC_OK);
    T_ASSERT(cc_session_send(p.con.s, 1, "x", 1) == CC_ERR_STATE);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 20000));
    T_EQ(p.con.result, 0);
    T_EQ(p.cli.result, 0);
    T_STREQ(p.cli.closed_text, "done");
    int closed = find_event(&cli_seen, CC_EVENT_CLOSED, 0);
    T_ASSERT(closed >= 0);
    T_EQ(cli_seen.e[closed].bulk_before, total);
    tp_pair_free(&p);
}

static void t_bulk_channels_interleave(void)
{
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    size_t each = 128 * 1024; /* within one window each */
    T_EQ(cc_session_send(p.con.s, 1, big, each), CC_OK);
    T_EQ(cc_session_send(p.con.s, 2, big, each), CC_OK);
    want_bytes = each;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_bulk, 10000));
    uint64_t end = t_now_ms() + 10000;
    while (cli_seen.per_channel[2] < each && t_now_ms() < end)
        tp_drive(&p.con, &p.cli, tp_both_ended, 5);
    T_EQ(cli_seen.per_channel[2], each);
    /* Round robin per frame: the channels alternate, each frame at most 16 KiB. */
    int frames = 0, switches = 0;
    uint32_t last = 99;
    for (int i = 0; i < cli_seen.n; i++) {
        if (cli_seen.e[i].type != CC_EVENT_DATA)
            continue;
        T_ASSERT(cli_seen.e[i].len <= 16384);
        if (last != 99 && cli_seen.e[i].channel != last)
            switches++;
        last = cli_seen.e[i].channel;
        frames++;
    }
    T_EQ(frames, 2 * 9); /* 128 KiB in frames of 16376 bytes: 9 per channel */
    T_EQ(switches, frames - 1);
    tp_pair_free(&p);
}

static void t_large_send_is_cut_into_frames(void)
{
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    size_t len = 100000;
    T_EQ(cc_session_send(p.con.s, 1, big, len), CC_OK);
    want_bytes = len;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_bulk, 10000));
    int frames = 0;
    for (int i = 0; i < cli_seen.n; i++)
        if (cli_seen.e[i].type == CC_EVENT_DATA) {
            T_ASSERT(cli_seen.e[i].len <= 16384 - 8);
            frames++;
        }
    T_EQ(frames, (int)((len + 16375) / 16376));
    tp_pair_free(&p);
}

static bool cli_quiet_steps(struct tp_side *a, struct tp_side *b)
{
    static int n;
    return ++n % 200 == 0 || a->ended || b->ended;
}

static void t_paused_channel_stops_at_the_window(void)
{
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    T_EQ(cc_session_set_channel_priority(p.con.s, 0, CC_PRIORITY_INTERACTIVE), CC_OK);
    T_EQ(cc_session_pause_channel(p.cli.s, 1, 1), CC_OK);
    size_t total = 1u << 20;
    T_ASSERT(cc_session_send(p.con.s, 1, big, total) >= 0);
    want_bytes = WINDOW_FRAMES;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_bulk, 10000));
    /* The sender stops at the window: more steps bring nothing more on channel 1. */
    tp_drive(&p.con, &p.cli, cli_quiet_steps, 2000);
    T_EQ(cli_seen.per_channel[1], WINDOW_FRAMES);
    T_ASSERT(cc_session_pending(p.con.s) > 0);
    /* Pings and the other channels still flow. */
    T_EQ(cc_session_ping(p.con.s), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, con_has_pong, 5000));
    T_EQ(cc_session_send(p.con.s, 0, "typed", 5), CC_OK);
    want_bytes = 5;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_ch0, 5000));
    T_EQ(cli_seen.per_channel[1], WINDOW_FRAMES);
    /* The host resumes: the grant lets the rest through. */
    T_EQ(cc_session_pause_channel(p.cli.s, 1, 0), CC_OK);
    want_bytes = total;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_bulk, 20000));
    T_EQ(cli_seen.per_channel[1], total);
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    T_EQ(cc_session_state(p.cli.s), CC_STATE_ESTABLISHED);
    tp_pair_free(&p);
}

static void t_send_ready_names_the_channel(void)
{
    struct tp_pair p = {0};
    send_limit = 65536;
    T_ASSERT(pair_start(&p));
    static char chunk[20000];
    T_EQ(cc_session_send(p.con.s, 3, chunk, sizeof chunk), CC_OK);
    T_EQ(cc_session_send(p.con.s, 3, chunk, sizeof chunk), CC_SEND_HIGH_WATER);
    T_EQ(cc_session_send(p.con.s, 3, chunk, sizeof chunk), CC_SEND_HIGH_WATER);
    T_EQ(cc_session_send(p.con.s, 3, chunk, sizeof chunk), CC_ERR_AGAIN);
    /* Another channel's queue is its own. */
    T_EQ(cc_session_send(p.con.s, 2, chunk, sizeof chunk), CC_OK);
    uint64_t end = t_now_ms() + 5000;
    while (!p.con.send_ready && t_now_ms() < end)
        tp_drive(&p.con, &p.cli, tp_both_ended, 5);
    T_EQ(p.con.send_ready, 1);
    tp_pair_free(&p);
}

static int ready_channel = -1;
static void ready_event(void *user, cc_session *s, const cc_event *ev)
{
    if (ev->type == CC_EVENT_SEND_READY)
        ready_channel = (int)ev->channel;
    logging_event(user, s, ev);
}

static void t_send_ready_event_channel(void)
{
    struct tp_pair p = {0};
    send_limit = 65536;
    T_ASSERT(pair_start(&p));
    cc_session_set_event_callback(p.con.s, ready_event, &con_seen);
    static char chunk[40000];
    T_EQ(cc_session_send(p.con.s, 5, chunk, sizeof chunk), CC_SEND_HIGH_WATER);
    uint64_t end = t_now_ms() + 5000;
    while (ready_channel < 0 && t_now_ms() < end)
        tp_drive(&p.con, &p.cli, tp_both_ended, 5);
    T_EQ(ready_channel, 5);
    tp_pair_free(&p);
}

static void t_peer_past_the_window_fails(void)
{
    /* A console that believes it has more credit than the client granted
     * (given to its pipe behind the library's back) sends past the window:
     * the client ends the session with CC_ERR_PROTOCOL, and the console hears why. */
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    T_EQ(cc_session_pause_channel(p.cli.s, 1, 1), CC_OK);
    char d[200];
    T_EQ(cc__pipe_credit(p.con.s->pipe, 1, 64 * 1024, d, sizeof d), CC_OK);
    T_ASSERT(cc_session_send(p.con.s, 1, big, WINDOW + 64 * 1024) >= 0);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 10000));
    T_EQ(p.cli.result, CC_ERR_PROTOCOL);
    T_CONTAINS(cc_session_errmsg(p.cli.s), "exceeds the window granted");
    T_EQ(cli_seen.per_channel[1], WINDOW_FRAMES); /* nothing past the window was delivered */
    T_EQ(p.con.result, CC_ERR_PROTOCOL);
    tp_pair_free(&p);

    /* A WINDOW that takes the credit past 2^31-1. */
    struct tp_pair q = {0};
    T_ASSERT(pair_start(&q));
    T_EQ(cc__pipe_credit(q.con.s->pipe, 1, 0x7fffffffu - WINDOW, d, sizeof d), CC_OK);
    T_EQ(cc__pipe_credit(q.con.s->pipe, 1, 1, d, sizeof d), CC_ERR_PROTOCOL);
    T_CONTAINS(d, "past 2^31-1");
    tp_pair_free(&q);
}

static bool cli_has_pong(struct tp_side *a, struct tp_side *b)
{
    return b->pongs > 0 || a->ended || b->ended;
}

static void t_pings_with_bulk_on_two_channels(void)
{
    /* Two channels each hold most of their own queue (CC_LIMIT_SEND_BUFFER
     * 1 MiB each; the client paused both, so beyond their windows 1.3 MiB
     * stays queued): the client's PING is answered, not taken for a ping
     * flood (that bound counts what PINGs can grow, not the host's data). */
    struct tp_pair p = {0};
    send_limit = 1u << 20;
    T_ASSERT(pair_start(&p));
    T_EQ(cc_session_pause_channel(p.cli.s, 1, 1), CC_OK);
    T_EQ(cc_session_pause_channel(p.cli.s, 2, 1), CC_OK);
    T_ASSERT(cc_session_send(p.con.s, 1, big, 900 * 1024) >= 0);
    T_ASSERT(cc_session_send(p.con.s, 2, big, 900 * 1024) >= 0);
    want_bytes = WINDOW_FRAMES;
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_bulk, 10000));
    T_ASSERT(cc_session_pending(p.con.s) > (1u << 20) + 64 * 1024);
    T_EQ(cc_session_ping(p.cli.s), CC_OK);
    T_ASSERT(tp_drive(&p.con, &p.cli, cli_has_pong, 10000));
    T_EQ(p.cli.pongs, 1);
    T_EQ(cc_session_state(p.con.s), CC_STATE_ESTABLISHED);
    tp_pair_free(&p);
}

static void t_window_frame_parse(void)
{
    char d[200];
    cc__window_msg m;
    const uint8_t ok[] = {0, 0, 0x40, 0};
    T_EQ(cc__f_window_parse(3, ok, sizeof ok, &m, d, sizeof d), CC_OK);
    T_EQ(m.channel, 3);
    T_EQ(m.increment, 0x4000);
    const uint8_t zero[] = {0, 0, 0, 0};
    T_EQ(cc__f_window_parse(3, zero, sizeof zero, &m, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "outside 1..2^31-1");
    const uint8_t huge[] = {0x80, 0, 0, 0};
    T_EQ(cc__f_window_parse(3, huge, sizeof huge, &m, d, sizeof d), CC_ERR_BAD_FRAME);
    const uint8_t shortp[] = {0, 1};
    T_EQ(cc__f_window_parse(3, shortp, sizeof shortp, &m, d, sizeof d), CC_ERR_BAD_FRAME);
    T_CONTAINS(d, "malformed WINDOW frame");
    T_STREQ(cc__frame_name(CC__F_WINDOW), "WINDOW");
}

static void t_channel_table_is_bounded(void)
{
    /* A session keeps window state for 1024 channels at once: the sender's
     * 1025th channel is refused (nothing queued), and a peer that makes the
     * receiver track more than 1024 fails with CC_ERR_PROTOCOL. */
    struct tp_pair p = {0};
    T_ASSERT(pair_start(&p));
    for (unsigned c = 0; c < 1000; c++) /* the client's own channels */
        T_EQ(cc_session_set_channel_priority(p.cli.s, (uint16_t)(2000 + c), CC_PRIORITY_BULK), CC_OK);
    for (unsigned c = 0; c < 1024; c++)
        T_EQ(cc_session_send(p.con.s, (uint16_t)c, "x", 1), CC_OK);
    T_EQ(cc_session_send(p.con.s, 1024, "x", 1), CC_ERR_NOMEM);
    T_EQ(cc_session_set_channel_priority(p.con.s, 1024, CC_PRIORITY_INTERACTIVE), CC_ERR_NOMEM);
    T_ASSERT(tp_drive(&p.con, &p.cli, tp_both_ended, 10000));
    T_EQ(p.cli.result, CC_ERR_PROTOCOL);
    T_CONTAINS(cc_session_errmsg(p.cli.s), "more than 1024 channels at once");
    T_EQ(p.con.result, CC_ERR_PROTOCOL);
    tp_pair_free(&p);
}

int main(void)
{
    if (t_make_certs() != 0) {
        printf("not ok - cannot make test certificates\n");
        return 1;
    }
    snprintf(pskfile, sizeof pskfile, "%s/psk.key", t_tmpdir());
    FILE *f = fopen(pskfile, "w");
    fputs("0123456789abcdef-test-key\n", f);
    fclose(f);
    t_run("a ping and an interactive frame overtake queued bulk", t_ping_and_interactive_overtake_bulk);
    t_run("a PONG overtakes the answering side's queued bulk", t_pong_before_bulk);
    t_run("an orderly close goes after the data queued before it", t_orderly_close_after_queued_data);
    t_run("two bulk channels interleave frame by frame", t_bulk_channels_interleave);
    t_run("a large send is cut into frames of one record", t_large_send_is_cut_into_frames);
    t_run("a paused channel stops at the window; pings and other channels flow; a grant resumes it",
          t_paused_channel_stops_at_the_window);
    t_run("back-pressure is per channel", t_send_ready_names_the_channel);
    t_run("CC_EVENT_SEND_READY names the channel", t_send_ready_event_channel);
    t_run("a peer sending past the window fails with CC_ERR_PROTOCOL", t_peer_past_the_window_fails);
    t_run("pings are answered while two channels hold more than one send buffer", t_pings_with_bulk_on_two_channels);
    t_run("WINDOW frames are checked", t_window_frame_parse);
    t_run("the channel table is bounded", t_channel_table_is_bounded);
    return t_done();
}
