/* test-escape.c -- examples/common.c's ex_escape, the one way the example
 * programs print a peer's strings: human lines and JSON, bad UTF-8, cutting. */
#include "../examples/common.h"
#include "harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *text(const char *s)
{
    static char buf[EX_SHOW_MAX];
    return ex_show(buf, s);
}

static const char *json(const char *s)
{
    static char buf[4096];
    return ex_escape(buf, sizeof buf, s, EX_ESC_JSON);
}

static void t_text_controls(void)
{
    T_STREQ(text("x\033[2J\033]0;owned\007\rdone\nsession 99: psk authenticated: psk:admin"),
            "x\\x1b[2J\\x1b]0;owned\\x07\\x0ddone\\x0asession 99: psk authenticated: psk:admin");
    T_STREQ(text("tab\there del\x7f"), "tab\\x09here del\\x7f");
    T_STREQ(text("a\\x1b"), "a\\\\x1b"); /* a peer's own "\x1b" cannot pass for an escaped byte */
    T_STREQ(text(NULL), "");
    T_STREQ(text(""), "");
}

static void t_text_utf8(void)
{
    T_STREQ(text("J\xc3\xbcrgen \xe2\x9c\x93 \xf0\x9f\x98\x80"), "J\xc3\xbcrgen \xe2\x9c\x93 \xf0\x9f\x98\x80");
    T_STREQ(text("bad \377\376 \303\050 end"), "bad \\xff\\xfe \\xc3( end");
    T_STREQ(text("over\xc0\xaflong"), "over\\xc0\\xaflong");
    T_STREQ(text("surrogate \xed\xa0\x80"), "surrogate \\xed\\xa0\\x80");
    T_STREQ(text("past \xf4\x90\x80\x80"), "past \\xf4\\x90\\x80\\x80");
    T_STREQ(text("cut \xe2\x82"), "cut \\xe2\\x82");
    /* well-formed, but they change how a line reads */
    T_STREQ(text("csi \xc2\x9b"
                 "2J"),
            "csi \\u009b2J");
    T_STREQ(text("rlo \xe2\x80\xae"
                 "gnp.exe"),
            "rlo \\u202egnp.exe");
    T_STREQ(text("ls \xe2\x80\xa8 ps \xe2\x80\xa9"), "ls \\u2028 ps \\u2029");
}

static void t_json(void)
{
    T_STREQ(json("say \"hi\" \\ \033[1m\n"), "say \\\"hi\\\" \\\\ \\u001b[1m\\u000a");
    T_STREQ(json("bad \377\376 \303\050 end"), "bad \\ufffd\\ufffd \\ufffd( end");
    T_STREQ(json("J\xc3\xbcrgen \xf0\x9f\x98\x80"), "J\xc3\xbcrgen \xf0\x9f\x98\x80");
    T_STREQ(json("\xe2\x80\xa8\xc2\x85"), "\\u2028\\u0085");
    T_STREQ(json("del\x7f"), "del\\u007f");
}

static void t_cut(void)
{
    char b[10];
    T_STREQ(ex_escape(b, sizeof b, "abcdefghi", EX_ESC_TEXT), "abcdefghi"); /* fits exactly */
    T_STREQ(ex_escape(b, sizeof b, "abcdefghijkl", EX_ESC_TEXT), "abcdef...");
    T_STREQ(ex_escape(b, sizeof b, "\033\033\033", EX_ESC_TEXT), "\\x1b..."); /* never half an escape */
    T_STREQ(ex_escape(b, 8, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", EX_ESC_TEXT),
            "\xc3\xa9\xc3\xa9..."); /* nor half a character */
    T_STREQ(ex_escape(b, 3, "abcdef", EX_ESC_TEXT), "");
    T_STREQ(ex_escape(b, 1, "abc", EX_ESC_JSON), "");
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    T_EQ(strlen(text(big)), EX_SHOW_MAX - 1);
    T_STREQ(text(big) + EX_SHOW_MAX - 4, "...");
}

/* The well-formedness a JSON parser needs, checked on the output. */
static int valid_json_inner(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == '"')
            return 0;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdef", p[i]) || !p[i])
                        return 0;
                p += 4;
            } else if (*p != '"' && *p != '\\') {
                return 0;
            }
        } else if (*p >= 0x80) {
            int n = *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : 2;
            if (*p < 0xC2 || *p > 0xF4)
                return 0;
            for (int i = 1; i < n; i++)
                if ((p[i] & 0xC0) != 0x80)
                    return 0;
            p += n - 1;
        }
    }
    return 1;
}

static void t_json_any_bytes(void)
{
    uint32_t x = 12345;
    char in[200], out[6 * sizeof in + 1];
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + round % (sizeof in - 1);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = (char)(1 + (x >> 16) % 255);
        }
        in[n] = 0;
        ex_escape(out, sizeof out, in, EX_ESC_JSON);
        if (!valid_json_inner(out)) {
            T_ASSERT(!"ex_escape's JSON is valid for any bytes");
        }
        char shown[EX_SHOW_MAX];
        ex_show(shown, in);
        for (const unsigned char *p = (const unsigned char *)shown; *p; p++)
            T_ASSERT(*p >= 0x20 && *p != 0x7F);
    }
}

static void t_json_string_whole(void)
{
    size_t n = 10000;
    char *in = malloc(n + 1);
    T_ASSERT(in);
    memset(in, '\033', n);
    in[n] = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    T_ASSERT(f);
    ex_json_string(f, in);
    fclose(f);
    free(in);
    T_EQ(len, 2 + 6 * n); /* however long, never cut: quotes and \u001b each */
    T_ASSERT(buf[0] == '"' && buf[len - 1] == '"');
    free(buf);
}

int main(void)
{
    t_run("human lines: control bytes and the backslash as \\xNN", t_text_controls);
    t_run("human lines: UTF-8 kept, bytes that are not UTF-8 and deceptive code points escaped", t_text_utf8);
    t_run("JSON: quotes, controls, U+FFFD for bytes that are not UTF-8", t_json);
    t_run("a string too long is cut at a character, with ...", t_cut);
    t_run("any bytes give valid JSON and a human line without control bytes", t_json_any_bytes);
    t_run("ex_json_string writes a long string whole", t_json_string_whole);
    return t_done();
}
