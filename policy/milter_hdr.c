#include "policy/milter_hdr.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void milter_hdrs_init(struct milter_hdrs *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
}

void milter_hdrs_free(struct milter_hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    milter_hdrs_init(h);
}

/* Takes ownership of name and value (freed on failure). */
static int milter_hdrs_put(struct milter_hdrs *h, size_t at, char *name, char *value)
{
    if (!name || !value)
        goto fail;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct milter_hdr *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            goto fail;
        h->v = v;
        h->cap = cap;
    }
    if (at > h->n)
        at = h->n;
    memmove(&h->v[at + 1], &h->v[at], (h->n - at) * sizeof(*h->v));
    h->v[at].name = name;
    h->v[at].value = value;
    h->n++;
    return 0;
fail:
    free(name);
    free(value);
    return -1;
}

/* RFC 5322 2.2: printable US-ASCII but the colon. Returns the name's length, 0 if none. */
static size_t milter_hdr_name_len(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] > ' ' && s[i] < 0x7f && s[i] != ':')
        i++;
    return i;
}

static size_t milter_hdr_line_end(const char *s, size_t len, size_t at, size_t *next)
{
    const char *lf = memchr(s + at, '\n', len - at);
    size_t end = lf ? (size_t)(lf - s) : len;
    *next = lf ? end + 1 : len;
    if (end > at && s[end - 1] == '\r')
        end--;
    return end;
}

int milter_hdrs_parse(struct milter_hdrs *h, const char *msg, size_t len, size_t *body_off)
{
    size_t at = 0;
    while (at < len) {
        size_t next, end = milter_hdr_line_end(msg, len, at, &next);
        if (end == at) {
            at = next; /* the empty line ends the section */
            break;
        }
        size_t nl = milter_hdr_name_len(msg + at, end - at);
        size_t colon = at + nl;
        /* RFC 5322 4.5.1 (obsolete syntax): whitespace before the colon */
        while (nl && colon < end && (msg[colon] == ' ' || msg[colon] == '\t'))
            colon++;
        if (nl == 0 || colon == end || msg[colon] != ':')
            break;
        struct buf v;
        buf_init(&v, 0);
        int r = buf_append(&v, msg + colon + 1, end - colon - 1);
        while (r == 0 && next < len && (msg[next] == ' ' || msg[next] == '\t')) {
            size_t from = next;
            end = milter_hdr_line_end(msg, len, from, &next);
            r = buf_append(&v, "\n", 1);
            if (r == 0)
                r = buf_append(&v, msg + from, end - from);
        }
        if (r == 0)
            r = buf_append(&v, "", 1);
        if (r < 0) {
            buf_free(&v);
            return -1;
        }
        /* the value's storage moves into the list */
        if (milter_hdrs_put(h, h->n, strndup(msg + at, nl), v.data) < 0)
            return -1;
        at = next;
    }
    *body_off = at;
    return 0;
}

/* A filter's value in the stored form ("\r\n" read as "\n"), or NULL when a line break
 * is not a fold (not followed by a space or tab) or a CR stands alone. */
static char *milter_hdr_value_copy(const char *v)
{
    size_t n = strlen(v), o = 0;
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\r') {
            if (v[i + 1] != '\n')
                goto bad;
            continue;
        }
        if (v[i] == '\n' && v[i + 1] != ' ' && v[i + 1] != '\t')
            goto bad;
        s[o++] = v[i];
    }
    s[o] = '\0';
    return s;
bad:
    free(s);
    return NULL;
}

static int milter_hdrs_put_checked(struct milter_hdrs *h, size_t at, const char *name,
                                   const char *value)
{
    size_t nl = strlen(name);
    if (nl == 0 || milter_hdr_name_len(name, nl) != nl)
        return -1;
    char *v = milter_hdr_value_copy(value);
    if (!v)
        return -1;
    return milter_hdrs_put(h, at, strdup(name), v);
}

int milter_hdrs_add(struct milter_hdrs *h, const char *name, const char *value)
{
    return milter_hdrs_put_checked(h, h->n, name, value);
}

int milter_hdrs_insert(struct milter_hdrs *h, uint32_t index, const char *name, const char *value)
{
    return milter_hdrs_put_checked(h, index, name, value);
}

int milter_hdrs_change(struct milter_hdrs *h, const char *name, uint32_t nth, const char *value)
{
    if (nth == 0)
        nth = 1;
    size_t i = 0;
    for (; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0 && --nth == 0)
            break;
    if (i == h->n)
        return value[0] ? milter_hdrs_add(h, name, value) : 0;
    if (value[0] == '\0') {
        free(h->v[i].name);
        free(h->v[i].value);
        memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(*h->v));
        h->n--;
        return 0;
    }
    char *v = milter_hdr_value_copy(value);
    if (!v)
        return -1;
    free(h->v[i].value);
    h->v[i].value = v;
    return 0;
}

int milter_hdrs_apply(struct milter_hdrs *h, const struct milter_mod *mod)
{
    switch (mod->type) {
    case MILTER_MOD_ADDHDR:
        return milter_hdrs_add(h, mod->name, mod->value);
    case MILTER_MOD_INSHDR:
        return milter_hdrs_insert(h, mod->index, mod->name, mod->value);
    case MILTER_MOD_CHGHDR:
        return milter_hdrs_change(h, mod->name, mod->index, mod->value);
    default:
        return 0;
    }
}

int milter_hdrs_write(const struct milter_hdrs *h, struct buf *out)
{
    size_t mark = out->len;
    for (size_t i = 0; i < h->n; i++) {
        const char *v = h->v[i].value;
        if (buf_append(out, h->v[i].name, strlen(h->v[i].name)) < 0 || buf_append(out, ":", 1) < 0)
            goto fail;
        for (const char *lf; (lf = strchr(v, '\n')); v = lf + 1)
            if (buf_append(out, v, (size_t)(lf - v)) < 0 || buf_append(out, "\r\n", 2) < 0)
                goto fail;
        if (buf_append(out, v, strlen(v)) < 0 || buf_append(out, "\r\n", 2) < 0)
            goto fail;
    }
    return 0;
fail:
    out->len = mark;
    return -1;
}
