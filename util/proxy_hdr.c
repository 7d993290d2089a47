#include "util/proxy_hdr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char proxy_hdr_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char proxy_hdr_v1_prefix[] = "PROXY ";

static size_t proxy_hdr_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

static enum proxy_hdr_result proxy_hdr_fail(const char **why, const char *text)
{
    *why = text;
    return PROXY_HDR_ERROR;
}

/* A v1 port: 1 to 5 digits, no sign, at most 65535 (the spec forbids nothing else). */
static bool proxy_hdr_v1_port(const char *text, in_port_t *out)
{
    size_t n = strlen(text);
    if (n == 0 || n > 5 || strspn(text, "0123456789") != n)
        return false;
    unsigned long v = strtoul(text, NULL, 10);
    if (v > 65535)
        return false;
    *out = htons((uint16_t)v);
    return true;
}

/* One v1 address and port, of the family the protocol word named. */
static bool proxy_hdr_v1_addr(int family, const char *addr, const char *port,
                              struct sockaddr_storage *ss, socklen_t *sslen)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        *sslen = sizeof(*sin);
        return inet_pton(AF_INET, addr, &sin->sin_addr) == 1 &&
               proxy_hdr_v1_port(port, &sin->sin_port);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    *sslen = sizeof(*sin6);
    return inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1 &&
           proxy_hdr_v1_port(port, &sin6->sin6_port);
}

static enum proxy_hdr_result proxy_hdr_v1(const char *data, size_t len, struct proxy_hdr *out,
                                          const char **why)
{
    size_t have = proxy_hdr_min(len, sizeof(proxy_hdr_v1_prefix) - 1);
    if (memcmp(data, proxy_hdr_v1_prefix, have) != 0)
        return proxy_hdr_fail(why, "not a PROXY header");
    const char *lf = memchr(data, '\n', proxy_hdr_min(len, PROXY_HDR_V1_MAX));
    if (!lf)
        return len >= PROXY_HDR_V1_MAX ? proxy_hdr_fail(why, "v1 line longer than 107 bytes")
                                       : PROXY_HDR_MORE;
    size_t n = (size_t)(lf - data);
    if (n == 0 || data[n - 1] != '\r')
        return proxy_hdr_fail(why, "v1 line not ended by CRLF");
    char line[PROXY_HDR_V1_MAX];
    memcpy(line, data, n - 1);
    line[n - 1] = '\0';
    if (strlen(line) != n - 1)
        return proxy_hdr_fail(why, "NUL in a v1 line");

    /* Fields are separated by exactly one space: split without collapsing runs. */
    char *field[7];
    size_t nf = 0;
    for (char *p = line; nf < 7;) {
        field[nf++] = p;
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    out->version = 1;
    out->len = n + 1;
    if (nf >= 2 && strcmp(field[1], "UNKNOWN") == 0) {
        out->local = true; /* the rest of an UNKNOWN line is to be ignored (spec 2.1) */
        return PROXY_HDR_DONE;
    }
    int family = nf < 2                          ? 0
                 : strcmp(field[1], "TCP4") == 0 ? AF_INET
                 : strcmp(field[1], "TCP6") == 0 ? AF_INET6
                                                 : 0;
    if (!family)
        return proxy_hdr_fail(why, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    if (nf != 6)
        return proxy_hdr_fail(why, "v1 line does not have 6 fields");
    if (!proxy_hdr_v1_addr(family, field[2], field[4], &out->src, &out->srclen) ||
        !proxy_hdr_v1_addr(family, field[3], field[5], &out->dst, &out->dstlen))
        return proxy_hdr_fail(why, "bad v1 address or port");
    out->local = false;
    return PROXY_HDR_DONE;
}

static enum proxy_hdr_result proxy_hdr_v2(const unsigned char *data, size_t len,
                                          struct proxy_hdr *out, const char **why)
{
    if (memcmp(data, proxy_hdr_sig, proxy_hdr_min(len, sizeof(proxy_hdr_sig))) != 0)
        return proxy_hdr_fail(why, "not a PROXY header");
    if (len >= 13 && (data[12] >> 4) != 2)
        return proxy_hdr_fail(why, "v2 version is not 2");
    if (len >= 13 && (data[12] & 0x0F) > 1)
        return proxy_hdr_fail(why, "v2 command is neither LOCAL nor PROXY");
    if (len < 16)
        return PROXY_HDR_MORE;
    size_t body = (size_t)data[14] << 8 | data[15];
    if (body > PROXY_HDR_V2_MAX)
        return proxy_hdr_fail(why, "v2 header longer than 1040 bytes");
    if (len < 16 + body)
        return PROXY_HDR_MORE;
    out->version = 2;
    out->len = 16 + body;
    const unsigned char *a = data + 16;
    unsigned family = data[13] >> 4, transport = data[13] & 0x0F;
    /* LOCAL: the proxy speaks for itself; its address block must be ignored (spec 2.2).
     * PROXY over UNSPEC: the same, the proxy knows no client. */
    if ((data[12] & 0x0F) == 0 || family == 0) {
        out->local = true;
        return PROXY_HDR_DONE;
    }
    if (transport != 1)
        return proxy_hdr_fail(why, "v2 transport is not TCP (STREAM)");
    out->local = false;
    memset(&out->src, 0, sizeof(out->src));
    memset(&out->dst, 0, sizeof(out->dst));
    if (family == 1) {
        if (body < 12)
            return proxy_hdr_fail(why, "v2 IPv4 address block shorter than 12 bytes");
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src,
                           *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        out->srclen = out->dstlen = sizeof(struct sockaddr_in);
    } else if (family == 2) {
        if (body < 36)
            return proxy_hdr_fail(why, "v2 IPv6 address block shorter than 36 bytes");
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src,
                            *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->srclen = out->dstlen = sizeof(struct sockaddr_in6);
    } else {
        return proxy_hdr_fail(why, "v2 family is not IPv4 or IPv6");
    }
    /* TLVs (ALPN, authority, SSL details, CRC32C...) follow the addresses: nothing here
     * needs them, so they are skipped without being read. */
    return PROXY_HDR_DONE;
}

enum proxy_hdr_result proxy_hdr_parse(const void *data, size_t len, struct proxy_hdr *out,
                                      const char **why)
{
    const unsigned char *p = data;
    *why = "";
    if (len == 0)
        return PROXY_HDR_MORE;
    if (p[0] == proxy_hdr_sig[0])
        return proxy_hdr_v2(p, len, out, why);
    return proxy_hdr_v1(data, len, out, why);
}
