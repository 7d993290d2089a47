/*
 * mailq: sendmail's queue listing over ringmail's qf files (cli/mailq.h). Every width and
 * indent below is sendmail 8's print_single_queue() and prtstr(), because scripts parse
 * that output (awk on the columns, grep on the "(Deferred: ...)" lines).
 */
#include "cli/mailq.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/queuectl.h"
#include "cli/spool_read.h"

/* sendmail's defaults for confWORK_RECIPIENT_FACTOR and confWORK_TIME_FACTOR. */
#define MAILQ_WK_RECIP_FACTOR 30000u
#define MAILQ_WK_TIME_FACTOR  90000u
/* Longest address shown in full; prtstr() cuts far earlier. */
#define MAILQ_ADDR_MAX 1024

uint64_t mailq_priority(const struct envelope *e)
{
    return e->size + (uint64_t)e->n_rcpts * MAILQ_WK_RECIP_FACTOR +
           (uint64_t)e->attempts * MAILQ_WK_TIME_FACTOR;
}

static int mailq_cmp(const void *a, const void *b)
{
    const struct envelope *x = *(const struct envelope *const *)a;
    const struct envelope *y = *(const struct envelope *const *)b;
    uint64_t px = mailq_priority(x), py = mailq_priority(y);
    if (px != py)
        return px < py ? -1 : 1;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->qid, y->qid);
}

void mailq_sort(const struct envelope **msgs, size_t n)
{
    if (n > 1)
        qsort(msgs, n, sizeof(*msgs), mailq_cmp);
}

/* sendmail's prtstr(): at most `ml` columns; a backslash doubled, anything not printable
 * ASCII as \ooo (when it still fits). */
static void mailq_prtstr(FILE *out, const char *s, int ml)
{
    for (; ml-- > 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\') {
            if (ml-- > 0)
                fputs("\\\\", out);
        } else if (c < 0x80 && isprint(c)) {
            fputc(c, out);
        } else if ((ml -= 3) > 0) {
            fprintf(out, "\\%03o", c);
        }
    }
}

/* sendmail keeps addresses as given, in angle brackets: "<a@b>", "<>". */
static void mailq_prtaddr(FILE *out, const char *addr, int ml)
{
    char b[MAILQ_ADDR_MAX + 3];
    snprintf(b, sizeof(b), "<%s>", addr ? addr : "");
    mailq_prtstr(out, b, ml);
}

static const char *mailq_bodytype(int body)
{
    return body == 8 ? "8BITMIME" : body == 7 ? "7BIT" : "";
}

static bool mailq_held(const struct envelope *e)
{
    return e->next_attempt == ENVELOPE_NEXT_HELD;
}

static void mailq_print_one(FILE *out, const struct envelope *e)
{
    char when[32];
    struct tm tm;
    time_t t = e->created;
    /* ctime()'s first 16 characters, "Thu Dec  3 16:47", in the C locale as sendmail. */
    if (!localtime_r(&t, &tm) || !strftime(when, sizeof(when), "%a %b %e %H:%M", &tm))
        snprintf(when, sizeof(when), "%16s", "?");
    /* The marker: sendmail's 'X' is "will not be run now"; a held message is that. */
    fprintf(out, "%13s%c%8" PRIu64 " %.16s ", e->qid, mailq_held(e) ? 'X' : ' ', e->size, when);
    mailq_prtaddr(out, e->sender, 39);
    if (e->quarantine) /* sendmail's printqueue() line for a quarantined message */
        fprintf(out, "\n     QUARANTINE: %.60s", e->quarantine);
    const char *reason = e->last_reason && *e->last_reason ? e->last_reason : NULL;
    const char *body = mailq_bodytype(e->body);
    if (reason || *body) {
        fprintf(out, "\n    %10.10s", body);
        if (reason)
            fprintf(out, "   (%.60s)", reason);
    }
    for (size_t i = 0; i < e->n_rcpts; i++) {
        if (!envelope_rcpt_open(e->rcpts[i].state))
            continue;
        fputs("\n\t\t\t\t\t ", out);
        mailq_prtaddr(out, e->rcpts[i].addr, 38);
    }
    fputc('\n', out);
}

void mailq_print_text(FILE *out, const struct mailq_block *blocks, size_t n_blocks)
{
    size_t total = 0;
    for (size_t b = 0; b < n_blocks; b++) {
        const struct mailq_block *q = &blocks[b];
        if (q->n == 0) {
            fprintf(out, "%s is empty\n", q->dir);
            continue;
        }
        fprintf(out, "\t\t%s (%zu request%s)\n", q->dir, q->n, q->n == 1 ? "" : "s");
        fputs("-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n",
              out);
        for (size_t i = 0; i < q->n; i++)
            mailq_print_one(out, q->msgs[i]);
        total += q->n;
    }
    fprintf(out, "\t\tTotal requests: %zu\n", total);
}

/* --- JSON --- */

/* The length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t mailq_utf8_len(const unsigned char *s)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || s[0] >= 0xf5)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, a surrogate, or beyond U+10FFFF */
    return n;
}

/* A JSON string, or null. UTF-8 (an SMTPUTF8 address) passes through; an octet that is not
 * part of valid UTF-8 becomes U+FFFD, so the document always parses. */
static void mailq_json_str(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p++);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\u%04x", *p++);
        } else if (*p < 0x80) {
            fputc(*p++, out);
        } else {
            size_t n = mailq_utf8_len(p);
            if (n) {
                fwrite(p, 1, n, out);
                p += n;
            } else {
                fputs("\\ufffd", out);
                p++;
            }
        }
    }
    fputc('"', out);
}

static void mailq_json_time(FILE *out, const char *key, time_t t)
{
    char iso[32];
    struct tm tm;
    if (gmtime_r(&t, &tm) && strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm))
        fprintf(out, "\"%s\": \"%s\", \"%s_unix\": %lld", key, iso, key, (long long)t);
    else
        fprintf(out, "\"%s\": null, \"%s_unix\": %lld", key, key, (long long)t);
}

static const char *mailq_state_name(enum envelope_rcpt_state s)
{
    switch (s) {
    case ENV_RCPT_PENDING:
        return "pending";
    case ENV_RCPT_WARNED:
        return "warned";
    case ENV_RCPT_DELIVERED:
        return "delivered";
    case ENV_RCPT_FAILED:
        return "failed";
    }
    return "unknown";
}

/* Postfix's queue names (postqueue -j's queue_name), which scripts already know: the
 * spool's messages are "hold", "deferred" (tried before) or "active"; "maildrop" for
 * files the pickup has not taken yet. */
static const char *mailq_queue_name(const struct mailq_block *q, const struct envelope *e)
{
    return q->maildrop ? "maildrop" : mailq_held(e) ? "hold" : e->attempts ? "deferred" : "active";
}

static void mailq_json_one(FILE *out, const struct mailq_block *q, const struct envelope *e)
{
    fputs("{\"qid\": ", out);
    mailq_json_str(out, e->qid);
    fprintf(out, ", \"queue\": \"%s\"", mailq_queue_name(q, e));
    fprintf(out, ", \"size\": %" PRIu64 ", ", e->size);
    mailq_json_time(out, "created", e->created);
    fputs(", \"sender\": ", out);
    mailq_json_str(out, e->sender);
    fprintf(out, ", \"held\": %s, \"attempts\": %u, ", mailq_held(e) ? "true" : "false",
            e->attempts);
    /* held: never due, both null; 0 (as soon as possible) has no date worth printing */
    if (mailq_held(e))
        fputs("\"next_attempt\": null, \"next_attempt_unix\": null", out);
    else if (e->next_attempt == 0)
        fputs("\"next_attempt\": null, \"next_attempt_unix\": 0", out);
    else
        mailq_json_time(out, "next_attempt", e->next_attempt);
    fputs(", \"last_reason\": ", out);
    mailq_json_str(out, e->last_reason && *e->last_reason ? e->last_reason : NULL);
    fputs(", \"maildrop\": ", out);
    mailq_json_str(out, e->maildrop);
    fputs(", \"recipients\": [", out);
    for (size_t i = 0; i < e->n_rcpts; i++) {
        fputs(i ? ", {\"address\": " : "{\"address\": ", out);
        mailq_json_str(out, e->rcpts[i].addr);
        fprintf(out, ", \"state\": \"%s\", \"orcpt\": ", mailq_state_name(e->rcpts[i].state));
        mailq_json_str(out, e->rcpts[i].orcpt);
        fputc('}', out);
    }
    fputs("]}", out);
}

void mailq_print_json(FILE *out, const struct mailq_block *blocks, size_t n_blocks)
{
    size_t n = 0;
    fputc('[', out);
    for (size_t b = 0; b < n_blocks; b++)
        for (size_t i = 0; i < blocks[b].n; i++) {
            fputs(n++ ? ",\n " : "\n ", out);
            mailq_json_one(out, &blocks[b], blocks[b].msgs[i]);
        }
    fputs(n ? "\n]\n" : "]\n", out);
}

/* sendmail -qQ[substr]: quarantined, the reason containing substr. */
static bool mailq_quarantined(const struct envelope *e, const char *substr)
{
    return !substr || (e->quarantine && strcasestr(e->quarantine, substr));
}

/* The messages `filters` and `quarantined` select, sorted, into `msgs` (room for all of
 * `list`). */
static size_t mailq_select(const struct spool_read_list *list, const char *const *filters,
                           size_t n_filters, const char *quarantined, const struct envelope **msgs)
{
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++) {
        const struct envelope *e = &list->msgs[i].env;
        if ((!n_filters || queuectl_matches(e, filters, n_filters)) &&
            mailq_quarantined(e, quarantined))
            msgs[n++] = e;
    }
    mailq_sort(msgs, n);
    return n;
}

int mailq_main(const struct config *cfg, bool json, const char *const *filters, size_t n_filters,
               const char *quarantined, FILE *out, FILE *err)
{
    /* The spool is 0700 (queue files name senders and recipients), so sendmail's
     * RestrictMailq is simply how it is: only root and the run-as user read it. */
    if (!spool_read_allowed(cfg->run_as, geteuid())) {
        fputs("You are not permitted to see the queue\n", err);
        return EX_NOPERM;
    }
    struct spool_read_list list;
    char why[512];
    if (spool_read_all(cfg->spool, &list, why, sizeof(why)) < 0) {
        if (errno == EACCES || errno == EPERM) {
            fputs("You are not permitted to see the queue\n", err);
            return EX_NOPERM;
        }
        if (errno != ENOENT) {
            fprintf(err, "mailq: cannot read the queue: %s\n", why);
            return EX_IOERR;
        }
    }
    /* The maildrop is the run-as user's directory (docs/command-line.md), so whoever may
     * read the spool may list it; its files are their writers', so only root reads them
     * all. */
    struct spool_read_list drop = {0};
    if (spool_read_maildrop(cfg->maildrop, cfg->hostname, &drop, why, sizeof(why)) < 0 &&
        errno != ENOENT)
        fprintf(err, "mailq: cannot read the maildrop: %s\n", why);
    size_t most = list.n > drop.n ? list.n : drop.n;
    const struct envelope **msgs = calloc(most ? 2 * most : 1, sizeof(*msgs));
    if (!msgs) {
        spool_read_list_free(&list);
        spool_read_list_free(&drop);
        fputs("mailq: out of memory\n", err);
        return EX_OSERR;
    }
    struct mailq_block blocks[2] = {
        {.dir = cfg->spool, .msgs = msgs},
        {.dir = cfg->maildrop, .maildrop = true, .msgs = msgs + most},
    };
    blocks[0].n = mailq_select(&list, filters, n_filters, quarantined, msgs);
    blocks[1].n = mailq_select(&drop, filters, n_filters, quarantined, msgs + most);
    /* the second block only when the maildrop holds something: an idle system's mailq
     * stays sendmail's */
    size_t n_blocks = drop.n ? 2 : 1;
    if (json)
        mailq_print_json(out, blocks, n_blocks);
    else
        mailq_print_text(out, blocks, n_blocks);
    if (list.damaged)
        fprintf(err,
                "mailq: %u queue file(s) could not be read (damaged; ringmaild sets them "
                "aside as Qf<qid> at its next start)\n",
                list.damaged);
    if (drop.damaged)
        fprintf(err,
                "mailq: %u file(s) in the maildrop %s could not be read (another user's, or "
                "not a maildrop file)\n",
                drop.damaged, cfg->maildrop);
    free(msgs);
    spool_read_list_free(&list);
    spool_read_list_free(&drop);
    int bad = fflush(out) != 0 || ferror(out);
    if (bad)
        fprintf(err, "mailq: write error: %s\n", strerror(errno));
    return bad ? EX_IOERR : EX_OK;
}
