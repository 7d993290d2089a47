/*
 * tests/fuzz/fuzz_milter.c — libFuzzer harness for the milter dialogue (policy/milter.c,
 * milter_proto.c) and the header edits it drives (milter_hdr.c).
 *
 * The input is the filter's byte stream after two octets: the seed of the feed sizes (so
 * packets are split anywhere) and the size bound of the modifications. The harness plays
 * the MTA through two messages of one session (every step, a refused recipient, two body
 * chunks, EOM, an abort, QUIT), feeding the fuzz bytes whenever a step waits.
 *
 * Invariants checked besides "no crash, no leak, no UB":
 *  - every packet the MTA writes is framed (length 1..65536, known command) and a step
 *    that returns DONE or FAILED writes nothing;
 *  - a failed dialogue has a reason and stays failed;
 *  - feed never consumes more than it was given, and a REPLYCODE result is 4xx/5xx with
 *    CR only in the CRLF between lines;
 *  - the modifications stay within the bound, and header edits applied to a message can
 *    never end its header section early or leave a bare CR or LF.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/milter.h"
#include "policy/milter_hdr.h"
#include "policy/milter_proto.h"

struct fz {
    struct milter *m;
    struct buf out;
    const uint8_t *data;
    size_t size, off;
    unsigned seed;
    size_t max_mods;
    bool over; /* input exhausted while waiting, or the dialogue failed */
};

static const char *fz_macro(void *arg, const char *name)
{
    (void)arg;
    return name[0] == '{' ? "value" : NULL;
}

static void fz_check_out(const struct buf *out)
{
    size_t at = 0;
    while (at < out->len) {
        if (out->len - at < 5)
            abort();
        const unsigned char *p = (const unsigned char *)out->data + at;
        uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (n == 0 || n > MILTER_CHUNK_MAX + 1 || n > out->len - at - 4 ||
            !strchr("ABCDEHKLMNOQRTU", p[4]))
            abort();
        at += 4 + n;
    }
}

static void fz_check_reply(const struct milter_result *res)
{
    if (res->verdict != MILTER_REPLYCODE)
        return;
    const char *r = res->reply;
    if (!r || res->code < 400 || res->code > 599)
        abort();
    for (const char *c = r; *c; c++)
        if ((*c == '\r' && c[1] != '\n') || (*c == '\n' && (c == r || c[-1] != '\r')))
            abort();
}

/* Runs one step's outcome: feeds until its result when it waits. */
static void fz_step(struct fz *f, enum milter_wait w)
{
    if (f->over)
        return;
    if (w == MILTER_DONE || w == MILTER_FAILED) {
        if (f->out.len)
            abort();
        if (w == MILTER_FAILED) {
            if (!milter_error(f->m)[0])
                abort();
            f->over = true;
        }
        return;
    }
    fz_check_out(&f->out);
    buf_free(&f->out);
    if (w != MILTER_WAIT)
        return;
    while (f->off < f->size) {
        f->seed = f->seed * 1103515245u + 12345u;
        size_t n = 1 + (f->seed >> 16) % 97;
        if (n > f->size - f->off)
            n = f->size - f->off;
        struct milter_result res;
        size_t used;
        enum milter_feed_status st = milter_feed(f->m, f->data + f->off, n, &used, &res);
        if (used > n)
            abort();
        f->off += used;
        if (st == MILTER_FEED_ERROR) {
            if (!milter_error(f->m)[0])
                abort();
            f->over = true;
            return;
        }
        if (st == MILTER_FEED_RESULT) {
            fz_check_reply(&res);
            if (res.verdict != MILTER_PROGRESS)
                return;
        } else if (used != n) {
            abort();
        }
    }
    f->over = true;
}

static void fz_check_mods(struct fz *f)
{
    const char *body;
    size_t blen, bytes = 0;
    milter_body_replaced(f->m, &body, &blen);
    if (blen > f->max_mods)
        abort();
    struct milter_hdrs h;
    milter_hdrs_init(&h);
    static const char msg[] = "From: a\r\nSubject: b\r\n\tc\r\n\r\nbody\r\n";
    size_t body_off;
    if (milter_hdrs_parse(&h, msg, sizeof(msg) - 1, &body_off) < 0)
        abort();
    for (size_t i = 0; i < milter_mods_count(f->m); i++) {
        const struct milter_mod *mod = milter_mod_at(f->m, i);
        if (!mod || !mod->name)
            abort();
        bytes += strlen(mod->name) + (mod->value ? strlen(mod->value) : 0);
        milter_hdrs_apply(&h, mod);
    }
    if (bytes > f->max_mods)
        abort();
    struct buf out = {0};
    if (milter_hdrs_write(&h, &out) == 0) {
        for (size_t i = 0; i < out.len; i++) {
            bool cr = out.data[i] == '\r', lf = out.data[i] == '\n';
            if (cr != (i + 1 < out.len && out.data[i + 1] == '\n') ||
                (lf && (i == 0 || out.data[i - 1] != '\r')))
                abort();
            if (lf && i + 2 < out.len && out.data[i + 1] == '\r')
                abort(); /* an empty line inside the section */
        }
    }
    buf_free(&out);
    milter_hdrs_free(&h);
}

static void fz_message(struct fz *f, const char *sender)
{
    static const char *const args[] = {"SIZE=10", "BODY=8BITMIME"};
    fz_step(f, milter_mail(f->m, &f->out, sender, args, 2));
    fz_step(f, milter_rcpt(f->m, &f->out, "<r1@x>", NULL, 0, false));
    fz_step(f, milter_rcpt(f->m, &f->out, "<r2@x>", args, 1, true));
    fz_step(f, milter_data(f->m, &f->out));
    fz_step(f, milter_header(f->m, &f->out, "From", " a"));
    fz_step(f, milter_header(f->m, &f->out, "Subject", " b\n\tc"));
    fz_step(f, milter_eoh(f->m, &f->out));
    fz_step(f, milter_body(f->m, &f->out, "body\r\n", 6));
    fz_step(f, milter_body(f->m, &f->out, "more\r\n", 6));
    fz_step(f, milter_eom(f->m, &f->out));
    if (!f->over)
        fz_check_mods(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct fz f = {.data = data + 2, .size = size - 2, .seed = data[0]};
    f.max_mods = (size_t)data[1] * 64;
    f.m = milter_new(NULL, NULL, fz_macro, NULL, f.max_mods);
    if (!f.m)
        return 0;
    buf_init(&f.out, 0);
    fz_step(&f, milter_negotiate(f.m, &f.out));
    fz_step(&f, milter_connect(f.m, &f.out, "client", '4', 25, "192.0.2.1"));
    fz_step(&f, milter_helo(f.m, &f.out, "client"));
    fz_step(&f, milter_unknown(f.m, &f.out, "XYZZY now"));
    fz_message(&f, "<s@x>");
    if (!f.over) {
        fz_step(&f, milter_abort(f.m, &f.out));
        fz_message(&f, "<>");
    }
    if (!f.over)
        fz_step(&f, milter_quit(f.m, &f.out));
    buf_free(&f.out);
    milter_free(f.m);
    return 0;
}
