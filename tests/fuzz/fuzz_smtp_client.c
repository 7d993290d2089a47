/*
 * tests/fuzz/fuzz_smtp_client.c — libFuzzer harness for the outbound SMTP client.
 *
 * The input is the server's byte stream after three octets that choose the settings
 * (STARTTLS, small reply bounds), the message (recipients, body type, SMTPUTF8, DSN, which
 * body) and the seed of the feed sizes, so the fuzzer explores splits (a CR at the end of
 * one read, its LF in the next). The harness answers what the client asks for: it starts
 * up to three transactions on READY/DONE (some from inside the DONE callback), completes
 * "handshakes", reports every write drained and jumps the clock to deadlines.
 *
 * Invariants checked besides "no crash, no leak, no UB":
 *  - every write is bounded (SMTP_CLIENT_PUSH_MAX and one command line);
 *  - outside a BDAT session, the end-of-data sequence "\r\n.\r\n" is written at most once
 *    per DATA command (a message can never end early: smuggling), and no CR or LF is ever
 *    written bare, even when the message has them, nor split across two writes;
 *  - nothing is written or reported after FAILED or CLOSED, and exactly one of them (or
 *    none, when the input ran out first) ends the session;
 *  - every reply in an event is bounded and printable, a DONE or FAILED in a transaction
 *    has one outcome per recipient, and n_accepted counts the OK ones.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_client.h"

struct fz {
    struct smtp_client *c;
    const struct smtp_client_msg *msg;
    bool ready, tls, over, busy, bdat;
    bool send_from_done;
    unsigned transactions;
    unsigned data_cmds, data_ends;
    char tail[4]; /* the last octets written, to find "\r\n.\r\n" across writes */
    size_t tail_len;
    uint64_t now;
};

static void fz_check_reply(const struct smtp_client_reply *r)
{
    if (!r)
        abort();
    size_t n = strnlen(r->text, sizeof(r->text));
    if (n > SMTP_CLIENT_TEXT_MAX || strnlen(r->enh, sizeof(r->enh)) >= sizeof(r->enh))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r->text[i] < 0x20 || r->text[i] == 0x7f)
            abort();
    if (r->code < 200 || r->code > 599)
        abort();
}

static void fz_count_ends(struct fz *f, const char *p, size_t len)
{
    static const char end[] = "\r\n.\r\n";
    /* the window spans the previous write's last four octets and this one */
    char window[4 + 64];
    size_t head = len < 64 ? len : 64;
    memcpy(window, f->tail, f->tail_len);
    memcpy(window + f->tail_len, p, head);
    size_t wlen = f->tail_len + head;
    for (size_t i = 0; i + 5 <= wlen; i++)
        if (memcmp(window + i, end, 5) == 0 && i < f->tail_len)
            f->data_ends++; /* straddles the two writes */
    for (size_t i = 0; i + 5 <= len; i++)
        if (memcmp(p + i, end, 5) == 0)
            f->data_ends++;
    if (len >= 4) {
        memcpy(f->tail, p + len - 4, 4);
        f->tail_len = 4;
    } else {
        size_t keep = f->tail_len + len > 4 ? 4 - len : f->tail_len;
        memmove(f->tail, f->tail + f->tail_len - keep, keep);
        memcpy(f->tail + keep, p, len);
        f->tail_len = keep + len;
    }
}

static void fz_send(void *arg, const void *data, size_t len)
{
    struct fz *f = arg;
    if (f->over || len == 0 || len > SMTP_CLIENT_PUSH_MAX + 1024)
        abort();
    const char *p = data;
    if (len >= 5 && memcmp(p, "BDAT ", 5) == 0)
        f->bdat = true;
    if (len == 6 && memcmp(p, "DATA\r\n", 6) == 0)
        f->data_cmds++;
    fz_count_ends(f, p, len);
    if (f->bdat)
        return;
    if (f->data_ends > f->data_cmds)
        abort();
    for (size_t i = 0; i < len; i++) {
        bool cr = p[i] == '\r', lf = p[i] == '\n';
        if (cr != (i + 1 < len && p[i + 1] == '\n') || (lf && (i == 0 || p[i - 1] != '\r')))
            abort();
    }
}

static void fz_start(struct fz *f);

static void fz_event(void *arg, const struct smtp_client_event *ev)
{
    struct fz *f = arg;
    if (f->over)
        abort();
    switch (ev->type) {
    case SMTP_CLIENT_EV_READY:
        if (ev->tls_refused)
            fz_check_reply(ev->reply);
        f->ready = true;
        break;
    case SMTP_CLIENT_EV_STARTTLS:
        f->tls = true;
        break;
    case SMTP_CLIENT_EV_RCPT:
        if (!f->busy || ev->rcpt_index >= f->msg->n_rcpts)
            abort();
        fz_check_reply(ev->reply);
        break;
    case SMTP_CLIENT_EV_DONE: {
        if (!f->busy || ev->n_rcpts != f->msg->n_rcpts || !ev->rcpts)
            abort();
        fz_check_reply(ev->reply);
        size_t ok = 0;
        for (size_t i = 0; i < ev->n_rcpts; i++) {
            fz_check_reply(&ev->rcpts[i]);
            ok += ev->rcpts[i].outcome == SMTP_CLIENT_OK;
        }
        if (ok != ev->n_accepted)
            abort();
        f->busy = false;
        f->ready = true;
        if (f->send_from_done && f->transactions < 3)
            fz_start(f);
        break;
    }
    case SMTP_CLIENT_EV_FAILED:
        fz_check_reply(ev->reply);
        if (f->busy != (ev->rcpts != NULL) || (f->busy && ev->n_rcpts != f->msg->n_rcpts))
            abort();
        for (size_t i = 0; i < ev->n_rcpts; i++)
            fz_check_reply(&ev->rcpts[i]);
        f->over = true;
        break;
    case SMTP_CLIENT_EV_CLOSED:
        f->over = true;
        break;
    }
}

/* Starts a transaction; its DONE may come from inside the call (a local refusal). */
static void fz_start(struct fz *f)
{
    f->ready = false;
    f->transactions++;
    f->busy = true;
    if (smtp_client_send(f->c, f->msg, f->now) != 0)
        abort(); /* idle after READY or DONE: it must start */
}

static char *fz_big_body(size_t *len)
{
    static char *big;
    static size_t big_len;
    if (!big) {
        big_len = 150000;
        big = malloc(big_len);
        if (!big)
            abort();
        for (size_t i = 0; i < big_len; i++)
            big[i] = i % 13 == 12 ? '\n' : i % 13 == 11 ? '\r' : (i % 39 == 0 ? '.' : 'b');
    }
    *len = big_len;
    return big;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t set_bits = data[0], msg_bits = data[1];
    unsigned seed = data[2];
    data += 3;
    size -= 3;

    struct smtp_client_settings set = {
        .helo_name = "client.fuzz",
        .starttls = set_bits & 1,
        .timeouts = {.initial = 50,
                     .helo = 60,
                     .mail = 70,
                     .rcpt = 80,
                     .datainit = 90,
                     .datablock = 100,
                     .datafinal = 110,
                     .rset = 120,
                     .quit = 130,
                     .misc = 140,
                     .starttls = 150},
        .max_reply_line = set_bits & 2 ? 40 : 0,
        .max_reply_lines = set_bits & 4 ? 4 : 0,
    };
    static const struct smtp_client_rcpt rcpts[] = {
        {.addr = "a@fuzz.test", .notify = 2 | 4, .orcpt = "rfc822;a@fuzz.test"},
        {.addr = "b@fuzz.test", .notify = 1},
        {.addr = "c@fuzz.test\r\nRSET", .notify = 8},
        {.addr = "d@fuzz.test", .orcpt = "bad orcpt"},
    };
    static const char *const bodies[] = {"", "Subject: x\r\n\r\n.\r\n..\r\nbody\r\n.",
                                         "a\n.\r\nb\r.\rc\r\n.\r\n", NULL};
    struct smtp_client_msg msg = {
        .sender = msg_bits & 0x80 ? "" : "s@fuzz.test",
        .rcpts = rcpts,
        .n_rcpts = 1 + (msg_bits & 3),
        .body = (msg_bits >> 2) & 1 ? 8 : 7,
        .smtputf8 = (msg_bits >> 3) & 1,
        .dsn_ret = (msg_bits >> 4) & 1 ? 2 : 1,
        .envid = "ENV+2Bid",
    };
    const char *body = bodies[(msg_bits >> 5) & 3];
    if (body) {
        msg.data = body;
        msg.len = strlen(body);
    } else {
        msg.data = fz_big_body(&msg.len);
    }

    struct fz f = {.msg = &msg, .now = 1, .send_from_done = (msg_bits >> 6) & 1};
    const struct smtp_client_io io = {.arg = &f, .send = fz_send, .event = fz_event};
    f.c = smtp_client_new(&set, &io, f.now);
    if (!f.c)
        return 0;
    for (size_t off = 0; off < size && !f.over;) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 61;
        if (n > size - off)
            n = size - off;
        smtp_client_feed(f.c, (const char *)data + off, n, f.now);
        off += n;
        for (int rounds = 0; rounds < 4 && !f.over; rounds++) {
            if (f.tls) {
                f.tls = false;
                smtp_client_tls_started(f.c, f.now);
            } else if (f.ready) {
                if (f.transactions < 3) {
                    fz_start(&f);
                } else {
                    f.ready = false;
                    smtp_client_quit(f.c, f.now);
                }
            } else if ((seed >> 8) % 7 == 0) {
                uint64_t d = smtp_client_deadline(f.c);
                if (!d)
                    break;
                f.now = d > f.now ? d : f.now;
                smtp_client_tick(f.c, f.now);
            } else {
                smtp_client_drained(f.c, f.now);
                break;
            }
        }
        f.now += 1;
    }
    if (!f.over)
        smtp_client_eof(f.c, f.now);
    if (!f.over) /* eof always ends the session */
        abort();
    smtp_client_free(f.c);
    return 0;
}
