#include "util/xtext.h"

#include <stdio.h>
#include <string.h>

size_t xtext_encode(const char *in, char *out, size_t outlen)
{
    size_t n = 0, written = 0; /* written: what fits, always < outlen */
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        char enc[4];
        size_t k = 1;
        if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
            k = (size_t)snprintf(enc, sizeof(enc), "+%02X", *p);
        else
            enc[0] = (char)*p;
        if (written == n && n + k < outlen) {
            memcpy(out + n, enc, k);
            written += k;
        }
        n += k;
    }
    if (outlen)
        out[written] = '\0';
    return n;
}

static int xtext_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

ssize_t xtext_decode(const char *in, size_t len, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = p[i];
        if (c == '+') {
            int hi = i + 2 < len ? xtext_hex(p[i + 1]) : -1;
            int lo = hi >= 0 ? xtext_hex(p[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = hi << 4 | lo;
            i += 2;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (char)c;
    }
    if (outlen == 0)
        return -1;
    out[n] = '\0';
    return (ssize_t)n;
}
