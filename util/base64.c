#include "util/base64.h"

#include <stdbool.h>
#include <stdint.h>

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_append(struct buf *out, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        char q[4] = {base64_alphabet[v >> 18 & 63], base64_alphabet[v >> 12 & 63],
                     i + 1 < len ? base64_alphabet[v >> 6 & 63] : '=',
                     i + 2 < len ? base64_alphabet[v & 63] : '='};
        if (buf_append(out, q, 4) < 0)
            return -1;
    }
    return 0;
}

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

ssize_t base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    if (len % 4)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int pad = last && in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0;
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int x = k >= 4 - pad ? 0 : base64_value(in[i + k]);
            if (x < 0)
                return -1;
            v = v << 6 | (uint32_t)x;
        }
        size_t take = (size_t)(3 - pad);
        if (n + take > outlen)
            return -1;
        out[n++] = (unsigned char)(v >> 16);
        if (take > 1)
            out[n++] = (unsigned char)(v >> 8);
        if (take > 2)
            out[n++] = (unsigned char)v;
    }
    return (ssize_t)n;
}
