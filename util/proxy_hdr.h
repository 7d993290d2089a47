/*
 * util/proxy_hdr.h — HAProxy's PROXY protocol header (versions 1 and 2), parsed.
 *
 * A load balancer in front of the daemon opens each TCP connection itself and sends, before
 * anything else, one header naming the client it relays (haproxy's doc/proxy-protocol.txt):
 * v1 is a text line "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" of at most 107 bytes; v2 a
 * 16-byte binary head (12-byte signature, version and command, family and transport, a
 * big-endian length) and that many bytes of addresses and TLVs.
 *
 * Pure: bytes in, a verdict out; no I/O, no allocation, no clock. The caller keeps what it
 * received so far and calls again with all of it; the parser never looks past the header,
 * so what follows it (the client's first SMTP bytes) is the caller's, from `len` on.
 *
 * Bounds: a v1 line longer than 107 bytes and a v2 header whose length field passes
 * PROXY_HDR_V2_MAX are errors, so a caller's buffer of PROXY_HDR_MAX bytes always suffices.
 * Input that can no longer become a header is an error as soon as the first wrong byte
 * arrives (an SMTP client that connected to a PROXY listener directly is told at once).
 */
#ifndef RINGMAIL_UTIL_PROXY_HDR_H
#define RINGMAIL_UTIL_PROXY_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PROXY_HDR_V1_MAX 107u  /* the spec's longest v1 line, CRLF included */
#define PROXY_HDR_V2_MAX 1024u /* v2 bytes after the 16-byte head: addresses and TLVs */
#define PROXY_HDR_MAX    (16u + PROXY_HDR_V2_MAX)

enum proxy_hdr_result {
    PROXY_HDR_MORE,  /* a valid beginning: call again with more bytes */
    PROXY_HDR_DONE,  /* *out is filled */
    PROXY_HDR_ERROR, /* not a header we accept; *why says what is wrong */
};

struct proxy_hdr {
    unsigned version; /* 1 or 2 */
    /* No client to speak of: v2's LOCAL command (the proxy's own health check), a v2 PROXY
     * with family UNSPEC, or v1's "PROXY UNKNOWN". src and dst are then unset. */
    bool local;
    struct sockaddr_storage src, dst; /* the client, and the address it connected to */
    socklen_t srclen, dstlen;
    size_t len; /* bytes the header took */
};

/* Parses the header at the start of data[0..len). *why is a static string on ERROR. */
enum proxy_hdr_result proxy_hdr_parse(const void *data, size_t len, struct proxy_hdr *out,
                                      const char **why);

#endif
