/*
 * util/netaddr.c — network addresses and prefixes.
 *
 * Everything is compared as raw bytes in network order. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, RFC 4291 2.5.5.2) is folded to plain IPv4 on both sides before
 * comparing, so "127.0.0.0/8" in relay_from matches a client that reached a dual-stack
 * listener as ::ffff:127.0.0.1, and "::ffff:10.0.0.0/104" matches a plain 10.x client.
 */
#include "util/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for the address part of a prefix: the longest IPv6 text plus slack. */
#define NETADDR_TEXT_MAX 64

static const uint8_t netaddr_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses a decimal prefix length with no sign, no leading zeros and at most `max`. */
static int netaddr_parse_bits(const char *s, unsigned max, unsigned *bits)
{
    unsigned v = 0;
    if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
        if (v > max)
            return -1;
    }
    *bits = v;
    return 0;
}

/* sendmail's class-style network "10" or "10.1" or "10.1.2" (relay-domains, access
 * map): one to three decimal octets, the prefix covering exactly the octets given. */
static int netaddr_parse_partial_v4(const char *s, uint8_t addr[4], unsigned *bits)
{
    unsigned n = 0;
    while (n < 3) {
        unsigned v = 0, digits = 0;
        for (; *s >= '0' && *s <= '9'; s++, digits++) {
            v = v * 10 + (unsigned)(*s - '0');
            if (digits >= 3 || v > 255)
                return -1;
        }
        if (digits == 0 || (digits > 1 && s[-(int)digits] == '0'))
            return -1;
        addr[n++] = (uint8_t)v;
        if (*s == '\0') {
            *bits = 8 * n;
            return 0;
        }
        if (*s++ != '.')
            return -1;
    }
    return -1;
}

/* Are all bits of addr past the first `bits` zero? */
static bool netaddr_host_bits_zero(const uint8_t *addr, unsigned nbytes, unsigned bits)
{
    for (unsigned i = bits / 8; i < nbytes; i++) {
        uint8_t mask = (i == bits / 8) ? (uint8_t)(0xffu >> (bits % 8)) : 0xffu;
        if (addr[i] & mask)
            return false;
    }
    return true;
}

int netaddr_prefix_parse(const char *text, struct netaddr_prefix *out, const char **why)
{
    char host[NETADDR_TEXT_MAX];
    const char *slash, *start = text, *end;
    unsigned max_bits, bits = 0;
    bool partial = false;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    if (text == NULL || *text == '\0') {
        *why = "empty address";
        return -1;
    }
    slash = strchr(text, '/');
    end = slash ? slash : text + strlen(text);
    /* "[::1]/128": brackets as in an address literal or a listener address */
    if (*start == '[') {
        if (end - start < 2 || end[-1] != ']') {
            *why = "unbalanced '[' in address";
            return -1;
        }
        start++;
        end--;
    }
    if ((size_t)(end - start) >= sizeof(host) || end == start) {
        *why = "not an IP address";
        return -1;
    }
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';

    if (strchr(host, ':') != NULL) {
        if (inet_pton(AF_INET6, host, out->addr) != 1) {
            *why = "not an IPv6 address";
            return -1;
        }
        out->family = AF_INET6;
        max_bits = 128;
    } else {
        out->family = AF_INET;
        max_bits = 32;
        if (inet_pton(AF_INET, host, out->addr) != 1) {
            if (netaddr_parse_partial_v4(host, out->addr, &bits) != 0) {
                *why = "not an IPv4 address";
                return -1;
            }
            partial = true;
        }
    }
    if (slash != NULL) {
        if (netaddr_parse_bits(slash + 1, max_bits, &bits) != 0) {
            *why = out->family == AF_INET ? "bad prefix length (0 to 32)"
                                          : "bad prefix length (0 to 128)";
            return -1;
        }
    } else if (!partial) {
        bits = max_bits;
    }
    if (!netaddr_host_bits_zero(out->addr, max_bits / 8, bits)) {
        *why = "host bits set beyond the prefix length";
        return -1;
    }
    out->bits = bits;
    return 0;
}

/* The address as (family, bytes), with an IPv4-mapped IPv6 address folded to IPv4. */
static int netaddr_sockaddr_bytes(const struct sockaddr *sa, uint8_t addr[16])
{
    if (sa == NULL)
        return AF_UNSPEC;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        memcpy(addr, &sin.sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        if (memcmp(sin6.sin6_addr.s6_addr, netaddr_v4mapped, 12) == 0) {
            memcpy(addr, sin6.sin6_addr.s6_addr + 12, 4);
            return AF_INET;
        }
        memcpy(addr, sin6.sin6_addr.s6_addr, 16);
        return AF_INET6;
    }
    return AF_UNSPEC;
}

static bool netaddr_bits_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    if (memcmp(a, b, bits / 8) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> (bits % 8));
    return ((a[bits / 8] ^ b[bits / 8]) & mask) == 0;
}

bool netaddr_prefix_match(const struct netaddr_prefix *p, const struct sockaddr *sa)
{
    uint8_t addr[16];
    int family = netaddr_sockaddr_bytes(sa, addr);
    const uint8_t *net = p->addr;
    int pfamily = p->family;
    unsigned bits = p->bits;

    /* a ::ffff:0:0/96-or-longer prefix speaks about IPv4 addresses */
    if (pfamily == AF_INET6 && bits >= 96 && memcmp(net, netaddr_v4mapped, 12) == 0) {
        pfamily = AF_INET;
        net += 12;
        bits -= 96;
    }
    if (family == AF_UNSPEC || family != pfamily)
        return false;
    if (bits > (family == AF_INET ? 32u : 128u))
        return false;
    return netaddr_bits_equal(addr, net, bits);
}

void netaddr_prefix_format(const struct netaddr_prefix *p, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];

    if (outlen == 0)
        return;
    if ((p->family != AF_INET && p->family != AF_INET6) ||
        inet_ntop(p->family, p->addr, host, sizeof(host)) == NULL) {
        snprintf(out, outlen, "unknown");
        return;
    }
    snprintf(out, outlen, "%s/%u", host, p->bits);
}

void netaddr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
    uint8_t addr[16];
    int family = netaddr_sockaddr_bytes(sa, addr);

    if (outlen == 0)
        return;
    if (family == AF_UNSPEC || inet_ntop(family, addr, out, (socklen_t)outlen) == NULL)
        snprintf(out, outlen, "unknown");
}

void netaddr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    }
}

uint32_t netaddr_key_hash(const uint8_t key[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

uint16_t netaddr_port(const struct sockaddr *sa)
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        return ntohs(sin.sin_port);
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        return ntohs(sin6.sin6_port);
    }
    return 0;
}

bool netaddr_is_ip(const char *text)
{
    uint8_t addr[16];
    if (text == NULL)
        return false;
    return inet_pton(AF_INET, text, addr) == 1 || inet_pton(AF_INET6, text, addr) == 1;
}

int netaddr_hostport_parse(const char *text, char *addr, size_t addrlen, uint16_t *port,
                           int *family, const char **why)
{
    const char *colon = strrchr(text, ':'), *host = text, *host_end = colon;
    if (!colon) {
        *why = "expected ADDRESS:PORT or [IPv6-ADDRESS]:PORT";
        return -1;
    }
    *family = AF_INET;
    if (text[0] == '[') {
        host = text + 1;
        host_end = colon > text && colon[-1] == ']' ? colon - 1 : NULL;
        *family = AF_INET6;
        if (!host_end) {
            *why = "an IPv6 address is written in brackets: [::1]:9465";
            return -1;
        }
    }
    size_t n = (size_t)(host_end - host);
    uint8_t bin[16];
    if (n == 0 || n >= addrlen) {
        *why = "expected an IP address before the port";
        return -1;
    }
    memcpy(addr, host, n);
    addr[n] = '\0';
    if (inet_pton(*family, addr, bin) != 1) {
        *why = *family == AF_INET && strchr(addr, ':')
                   ? "an IPv6 address is written in brackets: [::1]:9465"
                   : "not an IP address literal";
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || colon[1] < '0' || colon[1] > '9' || p < 1 || p > 65535 || errno) {
        *why = "expected a port from 1 to 65535 after the address";
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

bool netaddr_is_loopback(const char *addr)
{
    uint8_t b[16];
    static const uint8_t v6_loopback[16] = {[15] = 1};
    static const uint8_t v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (inet_pton(AF_INET, addr, b) == 1)
        return b[0] == 127;
    if (inet_pton(AF_INET6, addr, b) != 1)
        return false;
    return memcmp(b, v6_loopback, 16) == 0 || (memcmp(b, v4_mapped, 12) == 0 && b[12] == 127);
}
