#include "policy/milter_proto.h"

#include <limits.h>
#include <string.h>

static void milter_proto_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t milter_proto_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

long milter_proto_begin(struct buf *out, char cmd)
{
    const unsigned char hdr[5] = {0, 0, 0, 0, (unsigned char)cmd};
    size_t start = out->len;
    if (start > (size_t)LONG_MAX || buf_append(out, hdr, sizeof(hdr)) < 0)
        return -1;
    return (long)start;
}

int milter_proto_end(struct buf *out, long start)
{
    size_t s = (size_t)start;
    size_t len = out->len - s - MILTER_PROTO_HDR_LEN; /* the command octet and data */
    if (len - 1 > MILTER_CHUNK_MAX) {
        out->len = s;
        return -1;
    }
    milter_proto_put32((unsigned char *)out->data + s, (uint32_t)len);
    return 0;
}

int milter_proto_put(struct buf *out, char cmd, const void *data, size_t len)
{
    if (len > MILTER_CHUNK_MAX)
        return -1;
    long start = milter_proto_begin(out, cmd);
    if (start < 0)
        return -1;
    if (buf_append(out, data, len) < 0) {
        out->len = (size_t)start;
        return -1;
    }
    return milter_proto_end(out, start);
}

uint32_t milter_proto_length(const unsigned char hdr[MILTER_PROTO_HDR_LEN])
{
    uint32_t n = milter_proto_get32(hdr);
    return n == 0 || n > MILTER_PROTO_MAX_LEN ? 0 : n;
}

/* Splits `d` into NUL-terminated strings: at least `min`, at most `max`, the last NUL at
 * the very end. Returns how many, or -1. */
static int milter_proto_strings(const char *d, size_t n, int min, int max, const char **s)
{
    int k = 0;
    size_t at = 0;
    while (at < n) {
        const char *nul = memchr(d + at, '\0', n - at);
        if (!nul || k == max)
            return -1;
        s[k++] = d + at;
        at = (size_t)(nul - d) + 1;
    }
    return k < min ? -1 : k;
}

static enum milter_proto_status milter_proto_fields(struct milter_reply *r, const char *d, size_t n,
                                                    const char **why)
{
    const char *s[2] = {NULL, NULL};
    switch (r->code) {
    case MILTER_R_SHUTDOWN:
    case MILTER_R_ACCEPT:
    case MILTER_R_CONTINUE:
    case MILTER_R_DISCARD:
    case MILTER_R_CONN_FAIL:
    case MILTER_R_PROGRESS:
    case MILTER_R_REJECT:
    case MILTER_R_SKIP:
    case MILTER_R_TEMPFAIL:
        if (n != 0) {
            *why = "data after a reply that has none";
            return MILTER_PROTO_ERROR;
        }
        return MILTER_PROTO_REPLY;
    case MILTER_R_REPLBODY:
        r->raw = (const unsigned char *)d;
        r->raw_len = n;
        return MILTER_PROTO_REPLY;
    case MILTER_R_OPTNEG:
        if (n < 12) {
            *why = "negotiation reply shorter than its three integers";
            return MILTER_PROTO_ERROR;
        }
        r->version = milter_proto_get32((const unsigned char *)d);
        r->actions = milter_proto_get32((const unsigned char *)d + 4);
        r->protocol = milter_proto_get32((const unsigned char *)d + 8);
        r->raw = (const unsigned char *)d + 12;
        r->raw_len = n - 12;
        return MILTER_PROTO_REPLY;
    case MILTER_R_ADDRCPT:
    case MILTER_R_DELRCPT:
    case MILTER_R_QUARANTINE:
    case MILTER_R_REPLYCODE:
        if (milter_proto_strings(d, n, 1, 1, s) < 0 || s[0][0] == '\0') {
            *why = "reply string empty or not NUL-terminated";
            return MILTER_PROTO_ERROR;
        }
        break;
    case MILTER_R_ADDRCPT_PAR:
    case MILTER_R_CHGFROM:
        if (milter_proto_strings(d, n, 1, 2, s) < 0 || s[0][0] == '\0') {
            *why = "address reply malformed";
            return MILTER_PROTO_ERROR;
        }
        break;
    case MILTER_R_ADDHEADER:
        if (milter_proto_strings(d, n, 2, 2, s) < 0 || s[0][0] == '\0') {
            *why = "header reply malformed";
            return MILTER_PROTO_ERROR;
        }
        break;
    case MILTER_R_INSHEADER:
    case MILTER_R_CHGHEADER:
    case MILTER_R_SETSYMLIST: {
        int want = r->code == MILTER_R_SETSYMLIST ? 1 : 2;
        if (n < 4 || milter_proto_strings(d + 4, n - 4, want, want, s) < 0 || s[0][0] == '\0') {
            *why = "indexed reply malformed";
            return MILTER_PROTO_ERROR;
        }
        r->index = milter_proto_get32((const unsigned char *)d);
        break;
    }
    default:
        *why = "unknown reply code";
        return MILTER_PROTO_ERROR;
    }
    r->str = s[0];
    r->str2 = s[1];
    return MILTER_PROTO_REPLY;
}

enum milter_proto_status milter_proto_decode(const void *in, size_t len, size_t *consumed,
                                             struct milter_reply *r, const char **why)
{
    *why = "";
    *consumed = 0;
    memset(r, 0, sizeof(*r));
    if (len < MILTER_PROTO_HDR_LEN)
        return MILTER_PROTO_MORE;
    const unsigned char *p = in;
    uint32_t n = milter_proto_length(p);
    if (n == 0) {
        *why = "packet length 0 or too large";
        return MILTER_PROTO_ERROR;
    }
    if (len - MILTER_PROTO_HDR_LEN < n)
        return MILTER_PROTO_MORE;
    r->code = (char)p[MILTER_PROTO_HDR_LEN];
    enum milter_proto_status st =
        milter_proto_fields(r, (const char *)p + MILTER_PROTO_HDR_LEN + 1, n - 1, why);
    if (st == MILTER_PROTO_REPLY)
        *consumed = MILTER_PROTO_HDR_LEN + n;
    return st;
}

int milter_proto_symlist_next(const struct milter_reply *r, size_t *off, uint32_t *stage,
                              const char **names)
{
    if (*off >= r->raw_len)
        return 0;
    size_t left = r->raw_len - *off;
    const unsigned char *p = r->raw + *off;
    if (left < 5)
        return -1;
    const unsigned char *nul = memchr(p + 4, '\0', left - 4);
    if (!nul)
        return -1;
    *stage = milter_proto_get32(p);
    *names = (const char *)p + 4;
    *off += (size_t)(nul - p) + 1;
    return 1;
}
