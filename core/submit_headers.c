/*
 * core/submit_headers.c — the header fields sendmail's MSP adds to a submitted message
 * that lacks them (see submit_headers.h).
 *
 * The full name may come from a passwd GECOS field, which nothing has checked: control
 * octets become '?' (a CR or LF would start a header field of its own), so do octets that
 * are no well-formed UTF-8 (an encoded-word says UTF-8), and it is cut to
 * SMTP_FULLNAME_MAX octets (FULLNAME='s own limit) at a character boundary. Day and month
 * names are written here, not by strftime, so no locale can change them.
 */
#include "core/submit_headers.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "smtp/smtp_addr.h"
#include "smtp/smtp_server.h"
#include "util/base64.h"

/* RFC 2047 2: an encoded-word is at most 75 characters; "=?UTF-8?B?" and "?=" leave 63
 * for base64, i.e. 15 groups of 3 octets. */
#define SUBMIT_EW_OCTETS 45

static int submit_date(struct buf *out, const struct tm *tm)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long off = tm->tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    return buf_printf(out, "Date: %s, %02d %s %d %02d:%02d:%02d %c%02ld%02ld\r\n",
                      days[tm->tm_wday % 7], tm->tm_mday, months[tm->tm_mon % 12],
                      tm->tm_year + 1900, tm->tm_hour, tm->tm_min, tm->tm_sec, sign, off / 60,
                      off % 60);
}

static int submit_msgid(struct buf *out, const struct tm *tm, const char *qid, const char *host)
{
    return buf_printf(out, "Message-ID: <%04d%02d%02d%02d%02d.%s@%s>\r\n", tm->tm_year + 1900,
                      tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, qid, host);
}

/* The name made safe for a header (see the top of the file); returns its length and
 * whether it holds non-ASCII characters. */
static size_t submit_clean_name(const char *in, char out[SMTP_FULLNAME_MAX + 1], bool *utf8)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t len = strlen(in), n = 0;
    *utf8 = false;
    for (size_t i = 0; i < len && n < SMTP_FULLNAME_MAX;) {
        size_t clen = p[i] >= 0x80 ? smtp_utf8_len(p + i, len - i) : 1;
        if (clen > 1) {
            if (n + clen > SMTP_FULLNAME_MAX)
                break;
            memcpy(out + n, p + i, clen);
            n += clen;
            i += clen;
            *utf8 = true;
            continue;
        }
        out[n++] = p[i] < 0x20 || p[i] >= 0x7f ? '?' : (char)p[i];
        i++;
    }
    out[n] = '\0';
    return n;
}

/* RFC 5322 3.2.3 atext. */
static bool submit_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Atoms separated by single spaces: a phrase as it is. */
static bool submit_is_atoms(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == ' ') {
            if (i == 0 || i + 1 == len || name[i + 1] == ' ')
                return false;
        } else if (!submit_atext(c)) {
            return false;
        }
    }
    return len > 0;
}

static int submit_quoted(struct buf *out, const char *name, size_t len)
{
    if (buf_append(out, "\"", 1) < 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (((name[i] == '"' || name[i] == '\\') && buf_append(out, "\\", 1) < 0) ||
            buf_append(out, name + i, 1) < 0)
            return -1;
    return buf_append(out, "\"", 1);
}

/* RFC 2047 encoded-words, each holding whole characters (RFC 2047 5), folded between. */
static int submit_encoded_words(struct buf *out, const char *name, size_t len)
{
    const unsigned char *p = (const unsigned char *)name;
    for (size_t i = 0; i < len;) {
        size_t n = len - i < SUBMIT_EW_OCTETS ? len - i : SUBMIT_EW_OCTETS;
        while (i + n < len && (p[i + n] & 0xc0) == 0x80) /* not inside a character */
            n--;
        if ((i > 0 && buf_append(out, "\r\n ", 3) < 0) || buf_append(out, "=?UTF-8?B?", 10) < 0 ||
            base64_append(out, p + i, n) < 0 || buf_append(out, "?=", 2) < 0)
            return -1;
        i += n;
    }
    return 0;
}

static int submit_from(struct buf *out, const struct submit_headers_in *in)
{
    char name[SMTP_FULLNAME_MAX + 1];
    bool utf8;
    size_t len = in->fullname ? submit_clean_name(in->fullname, name, &utf8) : 0;
    int r = buf_append(out, "From: ", 6);
    if (r == 0 && len > 0) {
        if (utf8)
            r = submit_encoded_words(out, name, len);
        else if (submit_is_atoms(name, len))
            r = buf_append(out, name, len);
        else
            r = submit_quoted(out, name, len);
    }
    if (r < 0)
        return -1;
    const char *open = len > 0 ? " <" : "", *close = len > 0 ? ">" : "";
    if (in->sender[0])
        return buf_printf(out, "%s%s%s\r\n", open, in->sender, close);
    return buf_printf(out, "%sMAILER-DAEMON@%s%s\r\n", open, in->hostname, close);
}

int submit_headers_format(struct buf *out, const struct submit_headers_in *in)
{
    unsigned seen = in->headers_seen;
    size_t start = out->len;
    struct tm tm;
    time_t now = in->now;
    if (!localtime_r(&now, &tm)) { /* a time no calendar holds: the epoch */
        now = 0;
        gmtime_r(&now, &tm);
    }
    if ((!(seen & SMTP_HDR_SEEN_DATE) && submit_date(out, &tm) < 0) ||
        (!(seen & SMTP_HDR_SEEN_MSGID) && submit_msgid(out, &tm, in->qid, in->hostname) < 0) ||
        (!(seen & SMTP_HDR_SEEN_FROM) && submit_from(out, in) < 0) ||
        (!(seen & (SMTP_HDR_SEEN_TO | SMTP_HDR_SEEN_CC | SMTP_HDR_SEEN_BCC)) &&
         buf_append(out, "To: undisclosed-recipients:;\r\n", 30) < 0)) {
        out->len = start;
        return -1;
    }
    return 0;
}
