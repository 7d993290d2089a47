/*
 * Delivery status notifications (RFC 3464 format, RFC 3461 semantics) in sendmail's
 * wording.
 *
 * The text part and the delivery-status part are built first into scratch buffers, so
 * the boundary can be checked against everything the notice will contain (RFC 2046:
 * it must not occur in any part) before the first line is written. Every value that
 * comes from the network (addresses, replies, HELO names) is written with its control
 * characters turned into spaces, so no reply text can add a header or a MIME part, and
 * is folded so that no line passes 998 octets (RFC 5322 2.1.1).
 */
#include "queue/bounce.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xtext.h"

#define BOUNCE_LINE_MAX     998 /* RFC 5322 2.1.1, without the CRLF */
#define BOUNCE_FOLD_AT      78  /* where folding starts when there is a space to fold at */
#define BOUNCE_BOUNDARY_MAX 70  /* RFC 2046 5.1.1 */

/* A writer whose first failure sticks, so the assembly reads straight through and the
 * result is checked once at the end. */
struct bw {
    struct buf *b;
    bool failed;
};

static void bw_put(struct bw *w, const void *p, size_t n)
{
    if (!w->failed && buf_append(w->b, p, n) < 0)
        w->failed = true;
}

static void bw_str(struct bw *w, const char *s)
{
    bw_put(w, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void bw_printf(struct bw *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!w->failed && buf_vprintf(w->b, fmt, ap) < 0)
        w->failed = true;
    va_end(ap);
}

static bool bounce_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Writes lead (trusted, short) then value as one logical line: control characters become
 * spaces, and the line is folded before a word that would pass BOUNCE_FOLD_AT, or cut
 * inside a word that alone would pass BOUNCE_LINE_MAX; each continuation line starts with
 * cont (whitespace, so a header unfolds to the same words). Ends with CRLF. */
static void bw_folded(struct bw *w, const char *lead, const char *value, const char *cont)
{
    size_t start = strlen(lead), col = start, cont_len = strlen(cont);
    bw_str(w, lead);
    const unsigned char *p = (const unsigned char *)(value ? value : "");
    while (*p) {
        size_t spaces = 0, word = 0;
        while (p[spaces] == ' ' || (p[spaces] && bounce_ctl(p[spaces])))
            spaces++;
        while (p[spaces + word] && p[spaces + word] != ' ' && !bounce_ctl(p[spaces + word]))
            word++;
        if (!word)
            break; /* trailing white space is dropped */
        if (col > start && col + spaces + word > BOUNCE_FOLD_AT) {
            bw_str(w, "\r\n");
            bw_str(w, cont);
            col = cont_len;
        } else {
            for (size_t i = 0; i < spaces && col < BOUNCE_LINE_MAX; i++, col++)
                bw_put(w, " ", 1);
        }
        const unsigned char *wp = p + spaces;
        while (word) {
            if (col >= BOUNCE_LINE_MAX) {
                bw_str(w, "\r\n");
                bw_str(w, cont);
                col = cont_len;
            }
            size_t take = BOUNCE_LINE_MAX - col < word ? BOUNCE_LINE_MAX - col : word;
            bw_put(w, wp, take);
            col += take;
            wp += take;
            word -= take;
        }
        p = wp;
    }
    bw_str(w, "\r\n");
}

/* bw_folded with a formatted value. */
__attribute__((format(printf, 4, 5))) static void bw_foldf(struct bw *w, const char *lead,
                                                           const char *cont, const char *fmt, ...)
{
    struct buf v;
    buf_init(&v, 0);
    va_list ap;
    va_start(ap, fmt);
    if (buf_vprintf(&v, fmt, ap) < 0 || buf_append(&v, "", 1) < 0)
        w->failed = true;
    else
        bw_folded(w, lead, v.data, cont);
    va_end(ap);
    buf_free(&v);
}

/* A header or delivery-status field. Folded with one space, which stands for the space it
 * replaces, so the field unfolds (RFC 5322 2.2.3) to exactly its value. */
#define bw_field(w, name, ...) bw_foldf(w, name ": ", " ", __VA_ARGS__)

static void bounce_date(time_t t, char out[64])
{
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(out, 64, "%a, %d %b %Y %H:%M:%S %z", &tm))
        snprintf(out, 64, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* "4 hours", "5 days", "1 day, 12 hours": sendmail's wording for queuewarn/queuereturn. */
static void bounce_interval(uint32_t secs, char *out, size_t outlen)
{
    static const struct {
        uint32_t secs;
        const char *unit;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint32_t n = secs / units[i].secs;
        secs %= units[i].secs;
        if (!n)
            continue;
        int k = snprintf(out + len, outlen - len, "%s%" PRIu32 " %s%s", len ? ", " : "", n,
                         units[i].unit, n == 1 ? "" : "s");
        if (k < 0 || (size_t)k >= outlen - len)
            break;
        len += (size_t)k;
    }
    if (!len)
        snprintf(out, outlen, "0 seconds");
}

/* RFC 3461 4: ENVID and ORCPT travel as xtext; the report carries them decoded (RFC 3464
 * 2.2.1, 2.3.1). A value that does not decode to printable ASCII is kept as received:
 * still xtext, so still safe in a header. */
static const char *bounce_xtext_decode(const char *in, char *out, size_t outlen)
{
    ssize_t n = xtext_decode(in, strlen(in), out, outlen);
    for (ssize_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
            return in;
    return n < 0 ? in : out;
}

static bool bounce_status_valid(const char *s)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    const char *p = s + 2;
    for (int part = 0; part < 2; part++) {
        size_t n = strspn(p, "0123456789");
        if (n < 1 || n > 3 || p[n] != (part ? '\0' : '.'))
            return false;
        p += n + 1;
    }
    return true;
}

static const char *bounce_action_name(char action)
{
    switch (action) {
    case 'f':
        return "failed";
    case 'd':
        return "delayed";
    case 'D':
        return "delivered";
    case 'r':
        return "relayed";
    case 'x':
        return "expanded";
    }
    return NULL;
}

static const char *bounce_status_of(const struct bounce_rcpt *r)
{
    if (bounce_status_valid(r->status))
        return r->status;
    return r->action == 'f' ? "5.0.0" : r->action == 'd' ? "4.0.0" : "2.0.0";
}

bool bounce_notify_wants(unsigned notify, char action)
{
    if (notify & ENV_NOTIFY_NEVER)
        return false;
    switch (action) {
    case 'f':
        return !notify || (notify & ENV_NOTIFY_FAILURE);
    case 'd':
        return !notify || (notify & ENV_NOTIFY_DELAY);
    case 'D':
    case 'r':
    case 'x':
        return (notify & ENV_NOTIFY_SUCCESS) != 0;
    }
    return false;
}

struct bounce_target bounce_recipient_for(const struct envelope *e, enum bounce_kind kind,
                                          const char *postmaster)
{
    if (e->sender && *e->sender)
        return (struct bounce_target){.to = e->sender};
    if (kind != BOUNCE_FAILURE)
        return (struct bounce_target){.reason = "no delay or success notice for the null sender"};
    if (e->daemon && strcmp(e->daemon, BOUNCE_DAEMON_DOUBLE) == 0)
        return (struct bounce_target){.reason = "double bounce failed, dropped"};
    return (struct bounce_target){.to = postmaster, .double_bounce = true};
}

/* --- the human-readable part --- */

static void bounce_text_group(struct bw *w, const struct bounce_params *p, const char *actions,
                              const char *title)
{
    bool any = false;
    for (size_t i = 0; i < p->n_rcpts; i++) {
        const struct bounce_rcpt *r = &p->rcpts[i];
        if (!strchr(actions, r->action))
            continue;
        if (!any)
            bw_printf(w, "   ----- The following addresses had %s -----\r\n", title);
        any = true;
        bw_foldf(w, "", " ", "<%s>", r->addr);
        if (r->action == 'f' || r->action == 'd')
            bw_foldf(w, "    (reason: ", "     ", "%s)",
                     r->diagnostic ? r->diagnostic : bounce_status_of(r));
        else
            bw_str(w, r->action == 'r'   ? "    (relayed to non-DSN-aware mailer)\r\n"
                      : r->action == 'x' ? "    (expanded by alias)\r\n"
                                         : "    (successfully delivered)\r\n");
    }
    if (any)
        bw_str(w, "\r\n");
}

static void bounce_text_part(struct bw *w, const struct bounce_params *p,
                             const struct bounce_info *info)
{
    const struct envelope *e = p->env;
    char date[64], warn[64], ret[64];
    bounce_interval(p->retry->queuewarn, warn, sizeof(warn));
    bounce_interval(p->retry->queuereturn, ret, sizeof(ret));
    if (p->kind == BOUNCE_DELAY)
        bw_str(w, "    **********************************************\r\n"
                  "    **      THIS IS A WARNING MESSAGE ONLY      **\r\n"
                  "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\r\n"
                  "    **********************************************\r\n\r\n");
    bounce_date(e->created, date);
    bw_printf(w, "The original message was received at %s\r\n", date);
    const char *from = e->client_name ? e->client_name : e->helo;
    if (from && e->client_addr)
        bw_foldf(w, "from ", "     ", "%s [%s]", from, e->client_addr);
    else if (from || e->client_addr)
        bw_foldf(w, "from ", "     ", from ? "%s" : "[%s]", from ? from : e->client_addr);
    bw_str(w, "\r\n");
    bounce_text_group(w, p, "f", "permanent fatal errors");
    bounce_text_group(w, p, "d", "transient non-fatal errors");
    bounce_text_group(w, p, "Drx", "successful delivery notifications");

    bool transcript = false;
    for (size_t i = 0; i < p->n_rcpts; i++) {
        const struct bounce_rcpt *r = &p->rcpts[i];
        if (r->action != 'f' && r->action != 'd')
            continue;
        if (!transcript)
            bw_str(w, "   ----- Transcript of session follows -----\r\n");
        transcript = true;
        if (r->remote_mta) {
            bw_foldf(w, "... while talking to ", "    ", "%s:", r->remote_mta);
            if (r->diagnostic)
                bw_foldf(w, "<<< ", "    ", "%s", r->diagnostic);
        }
        /* sendmail ends a failure's transcript with the reply; a deferral says so. */
        if (r->action == 'd' || !r->remote_mta || !r->diagnostic)
            bw_foldf(w, "<", "    ", "%s>... %s%s", r->addr, r->action == 'd' ? "Deferred: " : "",
                     r->diagnostic ? r->diagnostic : bounce_status_of(r));
    }
    if (p->kind == BOUNCE_DELAY) {
        bw_printf(w, "Warning: message still undelivered after %s\r\n", warn);
        bw_printf(w, "Will keep trying until message is %s old\r\n", ret);
    }
    if (info->over_limit)
        bw_printf(w,
                  "\r\n   ----- The message was %zu octets, more than the %zu returned "
                  "here: only its header follows -----\r\n",
                  p->len, p->max_returned);
}

/* --- the machine-readable part (RFC 3464 2.2, 2.3) --- */

static void bounce_dsn_part(struct bw *w, const struct bounce_params *p)
{
    const struct envelope *e = p->env;
    char date[64], decoded[1024];
    if (e->envid)
        bw_field(w, "Original-Envelope-Id", "%s",
                 bounce_xtext_decode(e->envid, decoded, sizeof(decoded)));
    bw_field(w, "Reporting-MTA", "dns; %s", p->hostname);
    const char *from = e->client_name ? e->client_name : e->helo;
    if (from)
        bw_field(w, "Received-From-MTA", "dns; %s", from);
    bounce_date(e->created, date);
    bw_field(w, "Arrival-Date", "%s", date);
    for (size_t i = 0; i < p->n_rcpts; i++) {
        const struct bounce_rcpt *r = &p->rcpts[i];
        const char *action = bounce_action_name(r->action);
        if (!action)
            continue;
        bw_str(w, "\r\n");
        const char *semi = r->orcpt ? strchr(r->orcpt, ';') : NULL;
        if (semi)
            bw_field(w, "Original-Recipient", "%.*s;%s", (int)(semi - r->orcpt), r->orcpt,
                     bounce_xtext_decode(semi + 1, decoded, sizeof(decoded)));
        bw_field(w, "Final-Recipient", "rfc822; %s", r->addr);
        bw_field(w, "Action", "%s", action);
        bw_field(w, "Status", "%s", bounce_status_of(r));
        if (r->remote_mta)
            bw_field(w, "Remote-MTA", "dns; %s", r->remote_mta);
        if (r->diagnostic)
            bw_field(w, "Diagnostic-Code", "smtp; %s", r->diagnostic);
        if (r->last_attempt) {
            bounce_date(r->last_attempt, date);
            bw_field(w, "Last-Attempt-Date", "%s", date);
        }
        if (r->action == 'd') {
            bounce_date(e->created + (time_t)p->retry->queuereturn, date);
            bw_field(w, "Will-Retry-Until", "%s", date);
        }
    }
}

/* --- the returned message --- */

/* Length of the header block: up to the first empty line (or all of it). */
static size_t bounce_header_len(const char *data, size_t len)
{
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t line = end - at - (end > at && data[end - 1] == '\r');
        if (line == 0)
            return at;
        at = nl ? end + 1 : len;
    }
    return len;
}

/* Copies CRLF lines, cutting any longer than BOUNCE_LINE_MAX (RFC 5322 forbids them and a
 * relay on the way back would cut them anyway). A last line without its end gets one. */
static void bounce_copy_lines(struct bw *w, const char *data, size_t len)
{
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t line = end - at - (end > at && data[end - 1] == '\r');
        do {
            size_t take = line > BOUNCE_LINE_MAX ? BOUNCE_LINE_MAX : line;
            bw_put(w, data + at, take);
            bw_str(w, "\r\n");
            at += take;
            line -= take;
        } while (line);
        at = nl ? end + 1 : len;
    }
}

static bool bounce_has_8bit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] & 0x80)
            return true;
    return false;
}

/* RFC 2046 5.1.1: a boundary must not occur in the encapsulated parts. sendmail's shape
 * ("qid.time/host"), with a counter added until it occurs in none of them. */
static void bounce_boundary(const struct bounce_params *p, const struct buf *parts, size_t nparts,
                            const char *content, size_t content_len,
                            char out[BOUNCE_BOUNDARY_MAX + 1])
{
    const char *qid = p->notice_qid ? p->notice_qid : p->env->qid;
    int n = snprintf(out, BOUNCE_BOUNDARY_MAX + 1, "%.*s.%lld/", QID_LEN, qid, (long long)p->now);
    size_t len = n > 0 ? (size_t)n : 0;
    /* Leave room for the counter; keep only characters a boundary may hold. */
    for (const char *h = p->hostname; *h && len < BOUNCE_BOUNDARY_MAX - 12; h++)
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.", *h))
            out[len++] = *h;
    out[len] = '\0';
    for (unsigned try = 1;; try++) {
        size_t blen = strlen(out);
        bool clash = content_len && memmem(content, content_len, out, blen);
        for (size_t i = 0; i < nparts && !clash; i++)
            clash = parts[i].len && memmem(parts[i].data, parts[i].len, out, blen);
        if (!clash)
            return;
        snprintf(out + len, BOUNCE_BOUNDARY_MAX + 1 - len, ".%u", try);
    }
}

static const char *bounce_subject(const struct bounce_params *p, char *buf, size_t len)
{
    if (p->double_bounce)
        return "Postmaster notify: see transcript for details";
    if (p->kind == BOUNCE_DELAY) {
        char warn[64];
        bounce_interval(p->retry->queuewarn, warn, sizeof(warn));
        snprintf(buf, len, "Warning: could not send message for past %s", warn);
        return buf;
    }
    return p->kind == BOUNCE_SUCCESS ? "Return receipt"
                                     : "Returned mail: see transcript for details";
}

int bounce_generate(const struct bounce_params *p, struct buf *out, struct bounce_info *info_out)
{
    struct bounce_info info = {0};
    /* RFC 3461 4.3: only a failure returns the content, and RET=HDRS asks for less. */
    size_t hdr_len = bounce_header_len(p->data, p->len);
    info.over_limit = p->kind == BOUNCE_FAILURE && p->env->dsn_ret != 2 && p->max_returned &&
                      p->len > p->max_returned;
    info.headers_only = p->kind != BOUNCE_FAILURE || p->env->dsn_ret == 2 || info.over_limit;
    size_t content_len = info.headers_only ? hdr_len : p->len;

    struct buf parts[2];
    buf_init(&parts[0], 0);
    buf_init(&parts[1], 0);
    struct bw text = {&parts[0], false}, dsn = {&parts[1], false};
    bounce_text_part(&text, p, &info);
    bounce_dsn_part(&dsn, p);

    size_t start = out->len;
    struct bw w = {out, text.failed || dsn.failed};
    char boundary[BOUNCE_BOUNDARY_MAX + 1], date[64], subject[128];
    bounce_boundary(p, parts, 2, p->data, content_len, boundary);

    bounce_date(p->now, date);
    bw_field(&w, "Date", "%s", date);
    bw_field(&w, "From", "Mail Delivery Subsystem <MAILER-DAEMON@%s>", p->hostname);
    struct tm tm;
    char stamp[16] = "000000000000";
    if (localtime_r(&p->now, &tm))
        strftime(stamp, sizeof(stamp), "%Y%m%d%H%M", &tm);
    bw_field(&w, "Message-ID", "<%s.%.*s@%s>", stamp, QID_LEN,
             p->notice_qid ? p->notice_qid : p->env->qid, p->hostname);
    bw_field(&w, "To", "<%s>", p->to);
    bw_field(&w, "Subject", "%s", bounce_subject(p, subject, sizeof(subject)));
    bw_field(&w, "Auto-Submitted", "auto-replied");
    bw_field(&w, "MIME-Version", "1.0");
    bw_printf(&w,
              "Content-Type: multipart/report; report-type=delivery-status;\r\n"
              "\tboundary=\"%s\"\r\n\r\n"
              "This is a MIME-encapsulated message\r\n\r\n",
              boundary);

    bool text8 = bounce_has_8bit(parts[0].data, parts[0].len);
    bw_printf(&w, "--%s\r\nContent-Type: text/plain; charset=%s\r\n%s\r\n", boundary,
              text8 ? "utf-8" : "us-ascii", text8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
    bw_put(&w, parts[0].data, parts[0].len);
    bw_printf(&w, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary);
    bw_put(&w, parts[1].data, parts[1].len);
    bool content8 = bounce_has_8bit(p->data, content_len);
    bw_printf(&w, "\r\n--%s\r\nContent-Type: %s\r\n%s\r\n", boundary,
              info.headers_only ? "text/rfc822-headers" : "message/rfc822",
              content8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
    bounce_copy_lines(&w, p->data, content_len);
    bw_printf(&w, "\r\n--%s--\r\n", boundary);
    buf_free(&parts[0]);
    buf_free(&parts[1]);

    if (w.failed) {
        out->len = start;
        return -1;
    }
    info.eight_bit = bounce_has_8bit(out->data + start, out->len - start);
    if (info_out)
        *info_out = info;
    return 0;
}
