#include "util/log_json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Room kept back from the start so that closing a cut object always fits. */
static const char log_json_cut_tail[] = ",\"truncated\":true}";

struct log_json_writer {
    char *buf;
    size_t len;
    size_t limit; /* what the members may use: cap less the NUL and the cut tail */
};

static bool log_json_put(struct log_json_writer *w, const char *s, size_t n)
{
    if (n > w->limit - w->len)
        return false;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return true;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629, table 3-7 of Unicode), or 0. */
static size_t log_json_utf8_len(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

/* Writes s[0..n) as a JSON string, quotes included. With `cut`, stops at the first unit
 * that does not fit (and says so in *cut); without, all or nothing. */
static bool log_json_string(struct log_json_writer *w, const char *s, size_t n, bool *cut)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start = w->len;
    /* the closing quote is kept back while the content is written */
    if (w->limit - w->len < 2)
        return false;
    w->limit--;
    bool ok = log_json_put(w, "\"", 1);
    for (size_t i = 0; ok && i < n;) {
        char esc[8];
        const char *unit = esc;
        size_t len, used = 1;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            len = 2;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            len = 2;
        } else if (c < 0x20 || c == 0x7f) {
            len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else if (c < 0x80) {
            unit = (const char *)p + i;
            len = 1;
        } else if ((used = log_json_utf8_len(p + i, n - i)) != 0) {
            unit = (const char *)p + i;
            len = used;
        } else {
            unit = "\\ufffd";
            len = 6;
            used = 1;
        }
        ok = log_json_put(w, unit, len);
        if (ok)
            i += used;
    }
    w->limit++;
    if (!ok && !cut) {
        w->len = start;
        return false;
    }
    if (!ok)
        *cut = true;
    w->buf[w->len++] = '"';
    return true;
}

static bool log_json_member(struct log_json_writer *w, const char *key, size_t klen,
                            const char *val, size_t vlen)
{
    size_t start = w->len;
    if (log_json_put(w, ",", 1) && log_json_string(w, key, klen, NULL) && log_json_put(w, ":", 1) &&
        log_json_string(w, val, vlen, NULL))
        return true;
    w->len = start;
    return false;
}

static bool log_json_is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The length of the queue id that starts the line (followed by ": "), or 0. */
static size_t log_json_qid_len(const char *line)
{
    size_t n = 0;
    bool lower_only = true;
    while (log_json_is_alnum(line[n])) {
        lower_only &= line[n] >= 'a' && line[n] <= 'z';
        n++;
    }
    if (n < 12 || n > 20 || lower_only || line[n] != ':' || line[n + 1] != ' ')
        return 0;
    return n;
}

struct log_json_field {
    const char *key, *val;
    size_t klen, vlen;
};

static const char *const log_json_reserved[] = {"time",  "host", "ident", "pid",
                                                "level", "qid",  "msg",   "truncated"};

static bool log_json_key_taken(const struct log_json_field *f, size_t n, const char *key,
                               size_t klen)
{
    for (size_t i = 0; i < sizeof(log_json_reserved) / sizeof(log_json_reserved[0]); i++)
        if (strlen(log_json_reserved[i]) == klen && memcmp(log_json_reserved[i], key, klen) == 0)
            return true;
    for (size_t i = 0; i < n; i++)
        if (f[i].klen == klen && memcmp(f[i].key, key, klen) == 0)
            return true;
    return false;
}

/* Where the value at s ends: at the first ", " outside <...>, "...", [...] and (...), or at
 * the end of the line. An opening mark that is never closed runs to the end. */
static size_t log_json_value_len(const char *s)
{
    char close = 0;
    unsigned parens = 0;
    bool quoted = false;
    size_t i;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        if (quoted) {
            if (c == '\\' && s[i + 1])
                i++;
            else if (c == '"')
                quoted = false;
        } else if (c == '"')
            quoted = true;
        else if (parens) {
            parens += c == '(';
            parens -= c == ')';
        } else if (close) {
            if (c == close)
                close = 0;
        } else if (c == '(')
            parens = 1;
        else if (c == '<')
            close = '>';
        else if (c == '[')
            close = ']';
        else if (c == ',' && s[i + 1] == ' ')
            break;
    }
    return i;
}

/* Splits sendmail's "key=value, key=value" into f[]; returns the count, or 0 when the text
 * is not all key=value. */
static size_t log_json_fields(const char *s, struct log_json_field *f)
{
    size_t n = 0;
    while (*s) {
        size_t k = 0;
        if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
            return 0;
        while (log_json_is_alnum(s[k]) || s[k] == '_' || s[k] == '-' || s[k] == '.')
            k++;
        if (s[k] != '=' || n == LOG_JSON_FIELDS || log_json_key_taken(f, n, s, k))
            return 0;
        f[n].key = s;
        f[n].klen = k;
        f[n].val = s + k + 1;
        bool rest =
            (k == 4 && memcmp(s, "stat", 4) == 0) || (k == 6 && memcmp(s, "reject", 6) == 0);
        f[n].vlen = rest ? strlen(f[n].val) : log_json_value_len(f[n].val);
        s = f[n].val + f[n].vlen;
        n++;
        if (*s)
            s += 2; /* ", " */
    }
    return n;
}

static size_t log_json_time(char *out, size_t cap, const struct timespec *when)
{
    struct tm tm;
    char date[32];
    time_t secs = when->tv_sec;
    localtime_r(&secs, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int n = snprintf(out, cap, "%s.%03ld%c%02ld:%02ld", date, when->tv_nsec / 1000000L, sign,
                     off / 60, off % 60);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t log_json_format(char *out, size_t cap, const struct log_json_meta *m, const char *line)
{
    if (cap)
        out[0] = '\0';
    if (cap < LOG_JSON_MIN)
        return 0;
    struct log_json_writer w = {out, 0, cap - 1 - (sizeof(log_json_cut_tail) - 1)};
    char stamp[64], pid[32];
    size_t stamp_len = log_json_time(stamp, sizeof(stamp), &m->when);
    int pid_len = snprintf(pid, sizeof(pid), "%ld", m->pid);
    bool cut = false;

    /* The fixed members fit in LOG_JSON_MIN whatever their bytes (each is at most 64
     * bytes, 6 when escaped): only the line can make the object too long. */
    log_json_put(&w, "{\"time\":", 8);
    log_json_string(&w, stamp, stamp_len, NULL);
    if (m->host) {
        log_json_put(&w, ",\"host\":", 8);
        log_json_string(&w, m->host, strnlen(m->host, 64), NULL);
    }
    log_json_put(&w, ",\"ident\":", 9);
    log_json_string(&w, m->ident, strnlen(m->ident, 64), NULL);
    log_json_put(&w, ",\"pid\":", 7);
    log_json_put(&w, pid, (size_t)pid_len);
    log_json_put(&w, ",\"level\":", 9);
    log_json_string(&w, m->level, strlen(m->level), NULL);

    size_t qid = log_json_qid_len(line);
    struct log_json_field f[LOG_JSON_FIELDS];
    size_t n = log_json_fields(line + (qid ? qid + 2 : 0), f);
    /* All of it; else the message alone (the members repeat it), cut where it must be. */
    size_t before = w.len, len = strlen(line);
    bool whole = !qid || log_json_member(&w, "qid", 3, line, qid);
    for (size_t i = 0; whole && i < n; i++)
        whole = log_json_member(&w, f[i].key, f[i].klen, f[i].val, f[i].vlen);
    whole = whole && log_json_put(&w, ",\"msg\":", 7) && log_json_string(&w, line, len, NULL);
    if (!whole) {
        w.len = before;
        cut = true;
        log_json_put(&w, ",\"msg\":", 7);
        log_json_string(&w, line, len, &cut);
    }
    /* the tail was kept back from the limit: it always fits */
    w.limit = cap - 1;
    if (cut)
        log_json_put(&w, log_json_cut_tail, sizeof(log_json_cut_tail) - 1);
    else
        log_json_put(&w, "}", 1);
    out[w.len] = '\0';
    return w.len;
}
