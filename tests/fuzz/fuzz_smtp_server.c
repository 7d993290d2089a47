/*
 * tests/fuzz/fuzz_smtp_server.c — libFuzzer harness for the ESMTP server state machine.
 *
 * The input is the client's byte stream, cut into feeds whose sizes come from the input
 * itself (so the fuzzer explores splits: CR at the end of one read, LF at the start of
 * the next). The checks at HELO, MAIL, RCPT and DATA/BDAT accept, refuse or say pending,
 * and pending ones are answered later (accepted, refused, or with a verbatim reply, well
 * formed or not); commits are answered ok, failed or refused (code or verbatim); TLS
 * "handshakes" complete, and the clock jumps to each deadline so timeouts and slow-downs
 * run too. These choices come from the same seed as the feed sizes.
 *
 * Invariants checked besides "no crash, no leak, no UB":
 *  - a message only ends at a real end: DATA_END count <= occurrences of "\r\n.\r\n" in
 *    the input + the BDAT ... LAST commands in it (the smuggling property);
 *  - every reply is CRLF-terminated, starts with three digits and fits in 512 octets per
 *    line;
 *  - an accepted HELO name is one smtp_helo_valid() allows (so it reaches Received: as it
 *    is), a Message-ID holds no control octet, and no NUL is ever passed on as data;
 *  - nothing is replied or reported after SMTP_EV_CLOSE except a repeated CLOSE;
 *  - no check is asked for while one is pending;
 *  - on the local submission socket (half the inputs: the first octet's low bit), every
 *    accepted message had exactly one SMTP_EV_HEADER_END, none came outside a message or
 *    elsewhere, and its bits and len are in range.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_helo.h"
#include "smtp/smtp_server.h"

struct fz {
    unsigned data_end, closes;
    unsigned header_ends; /* in the current message */
    unsigned seed;        /* the choices of the hooks and of how waits end */
    bool waiting_commit, waiting_tls, waiting_check;
    bool closed;
    bool local, in_message;
};

static void fz_reply(void *arg, const char *bytes, size_t len)
{
    struct fz *f = arg;
    if (f->closed || len < 6 || bytes[len - 2] != '\r' || bytes[len - 1] != '\n')
        abort();
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (line == 0 && (bytes[i] < '0' || bytes[i] > '9'))
            abort();
        if (++line > 512)
            abort();
        if (bytes[i] == '\n')
            line = 0;
    }
}

static void fz_event(void *arg, const struct smtp_event *ev)
{
    struct fz *f = arg;
    if (f->closed && ev->type != SMTP_EV_CLOSE)
        abort();
    switch (ev->type) {
    case SMTP_EV_HELO: {
        char token[SMTP_HELO_MAX + 1];
        if (!smtp_helo_valid(ev->arg, strlen(ev->arg)) ||
            smtp_helo_received(ev->arg, token, sizeof(token)) != strlen(ev->arg) ||
            strcmp(token, ev->arg) != 0)
            abort();
        break;
    }
    case SMTP_EV_DATA_START:
        f->in_message = true;
        f->header_ends = 0;
        break;
    case SMTP_EV_HEADER_END:
        if (!f->local || !f->in_message || f->header_ends++ || ev->len > 1 ||
            (ev->headers_seen & ~0x7fu))
            abort();
        break;
    case SMTP_EV_DATA_ABORT:
        f->in_message = false;
        break;
    case SMTP_EV_DATA_END:
        if (f->local && f->header_ends != 1)
            abort();
        f->in_message = false;
        f->data_end++;
        f->waiting_commit = true;
        for (const char *c = ev->msgid; c && *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                abort();
        break;
    case SMTP_EV_STARTTLS:
        f->waiting_tls = true;
        break;
    case SMTP_EV_CLOSE:
        f->closed = true;
        break;
    case SMTP_EV_DATA: /* a NUL refuses the message before it is passed on */
        if (!ev->len || !ev->data || memchr(ev->data, '\0', ev->len))
            abort();
        break;
    case SMTP_EV_REJECT:
        if (!ev->cmd || !ev->reply)
            abort();
        break;
    default:
        break;
    }
}

static unsigned fz_next(struct fz *f)
{
    f->seed = f->seed * 1103515245u + 12345u;
    return f->seed >> 16;
}

/* A check's verdict: mostly accepted, sometimes refused or pending. */
static int fz_verdict(struct fz *f, struct smtp_addr_error *err)
{
    if (f->waiting_check)
        abort();
    switch (fz_next(f) % 8) {
    case 0:
        *err = (struct smtp_addr_error){550, "5.7.1", "Command rejected"};
        return -1;
    case 1:
    case 2:
        f->waiting_check = true;
        return 1;
    default:
        return 0;
    }
}

static int fz_check_rcpt(void *arg, const struct smtp_path *rcpt,
                         const struct smtp_rcpt_params *params, struct smtp_addr_error *err)
{
    struct fz *f = arg;
    (void)params;
    if (rcpt->domain[0] == 'x') { /* some recipients are refused, to reach the throttle */
        err->code = 550;
        err->enh = "5.7.1";
        err->reason = "Relaying denied";
        return -1;
    }
    return fz_verdict(f, err);
}

static int fz_check_mail(void *arg, const struct smtp_path *sender,
                         const struct smtp_mail_params *params, struct smtp_addr_error *err)
{
    (void)sender;
    (void)params;
    return fz_verdict(arg, err);
}

static int fz_check_helo(void *arg, const char *name, bool esmtp, struct smtp_addr_error *err)
{
    (void)name;
    (void)esmtp;
    return fz_verdict(arg, err);
}

static int fz_check_data(void *arg, struct smtp_addr_error *err)
{
    return fz_verdict(arg, err);
}

/* Filters' replies, well-formed or not (the malformed ones must become the fallback). */
static const char *const fz_verbatim[] = {
    "554-5.7.1 one\r\n554 5.7.1 two", "451 4.7.1 later", "550-bad\r\n551 mixed",
    "250 2.0.0 not a refusal",        "554 bare\nLF",
};

/* The verdict on the pending check. */
static void fz_check_done(struct smtp_server *s, struct fz *f, uint64_t now)
{
    static const struct smtp_addr_error no = {451, "4.7.1", "Try\r\nlater"};
    unsigned pick = fz_next(f);
    f->waiting_check = false;
    if (pick % 3 == 0)
        smtp_server_check_done(s, NULL, now);
    else if (pick % 3 == 1)
        smtp_server_check_done(s, &no, now);
    else
        smtp_server_check_done_reply(s, fz_verbatim[pick / 3 % 5], now);
}

/* The end of the commit that DATA_END asked for. */
static void fz_commit_done(struct smtp_server *s, struct fz *f, uint64_t now)
{
    unsigned pick = fz_next(f);
    f->waiting_commit = false;
    switch (pick % 4) {
    case 0:
    case 1:
        smtp_server_commit_done(s, pick % 4 == 0, "FUZZQID", now);
        break;
    case 2:
        smtp_server_commit_refused(s, 500 + (int)(pick / 4 % 100), "5.7.1", "No\r\nthanks", now);
        break;
    default:
        smtp_server_commit_refused_reply(s, fz_verbatim[pick / 4 % 5], now);
        break;
    }
}

static size_t fz_count(const uint8_t *p, size_t len, const char *needle, bool nocase)
{
    size_t n = strlen(needle), count = 0;
    for (size_t i = 0; i + n <= len; i++)
        if (nocase ? strncasecmp((const char *)p + i, needle, n) == 0
                   : memcmp(p + i, needle, n) == 0)
            count++;
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small limits, so the fuzzer reaches every one of them. */
    static const struct smtp_server_settings set = {
        .hostname = "mx.fuzz",
        .starttls = true,
        .limits = {.max_message_size = 300,
                   .max_recipients = 3,
                   .max_command_line = 80,
                   .max_text_line = 60,
                   .max_header_size = 120,
                   .max_errors = 12,
                   .error_throttle = 4,
                   .bad_rcpt_throttle = 2,
                   .max_input_buffer = 256,
                   .min_data_rate = 7},
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
                     .command = 500},
    };
    struct smtp_server_settings local = set;
    local.local = true;
    struct fz f = {.local = size && (data[0] & 1), .seed = size ? data[0] : 0};
    const struct smtp_server_io io = {.arg = &f,
                                      .reply = fz_reply,
                                      .event = fz_event,
                                      .check_rcpt = fz_check_rcpt,
                                      .check_mail = fz_check_mail,
                                      .check_helo = fz_check_helo,
                                      .check_data = fz_check_data};
    uint64_t now = 1;
    struct smtp_server *s = smtp_server_new(f.local ? &local : &set, &io, "[192.0.2.9]", now);
    if (!s)
        return 0;
    smtp_server_start(s, "mx.fuzz ESMTP", now);

    /* The first octet seeds the feed sizes; the rest is the client's stream. */
    unsigned seed = size ? data[0] : 0;
    const uint8_t *p = size ? data + 1 : data;
    size_t len = size ? size - 1 : 0;
    for (size_t off = 0; off < len && !f.closed;) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 97;
        if (n > len - off)
            n = len - off;
        smtp_server_feed(s, (const char *)p + off, n, now);
        off += n;
        /* answer what the server waits for, then let time pass to its deadline */
        for (int rounds = 0; rounds < 4 && !f.closed; rounds++) {
            if (f.waiting_commit) {
                fz_commit_done(s, &f, now);
            } else if (f.waiting_check && (seed >> 4) % 3) {
                fz_check_done(s, &f, now); /* else left to the session's timeout */
            } else if (f.waiting_tls) {
                f.waiting_tls = false;
                smtp_server_tls_started(s, now);
            } else if ((seed >> 8) % 5 == 0) {
                uint64_t d = smtp_server_deadline(s);
                if (!d)
                    break;
                now = d > now ? d : now;
                smtp_server_tick(s, now);
            } else {
                break;
            }
        }
        now += 1;
    }
    smtp_server_eof(s);
    smtp_server_free(s);

    /* Only a real end of data, or a BDAT LAST, can end a message. (The CRLF before the
     * "." of an empty message is the DATA command's own.) */
    size_t ends = fz_count(p, len, "\r\n.\r\n", false) + fz_count(p, len, "LAST", true);
    if (f.data_end > ends)
        abort();
    return 0;
}
