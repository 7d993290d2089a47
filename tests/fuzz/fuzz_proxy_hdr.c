/* libFuzzer harness for the PROXY protocol header parser (util/proxy_hdr.h): on a listener
 * with proxy_protocol, these are the first bytes any trusted proxy (or anyone who got past
 * it) sends.
 *
 * Whatever the input: a header is DONE within PROXY_HDR_MAX bytes and never claims more
 * bytes than it was given; an ERROR has a printable reason; DONE with a client gives an
 * IPv4 or IPv6 address of the matching length. The verdict only depends on the bytes up to
 * the header's end (what follows is the client's), and feeding the same bytes one at a time
 * reaches the same verdict: MORE for every proper prefix of a DONE header. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/proxy_hdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_addr(const struct sockaddr_storage *ss, socklen_t len)
{
    check(ss->ss_family == AF_INET || ss->ss_family == AF_INET6);
    check(len ==
          (ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_hdr h;
    const char *why;
    enum proxy_hdr_result r = proxy_hdr_parse(data, size, &h, &why);
    if (r == PROXY_HDR_ERROR) {
        check(why[0] != '\0');
        for (const char *p = why; *p; p++)
            check((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    }
    if (r == PROXY_HDR_MORE)
        check(size < PROXY_HDR_MAX);
    if (r != PROXY_HDR_DONE)
        return 0;
    check(h.len > 0 && h.len <= size && h.len <= PROXY_HDR_MAX);
    check(h.version == 1 || h.version == 2);
    if (!h.local) {
        check_addr(&h.src, h.srclen);
        check_addr(&h.dst, h.dstlen);
        check(h.src.ss_family == h.dst.ss_family);
    }
    /* Only the header's bytes decide, and every shorter prefix asks for more. */
    struct proxy_hdr again;
    check(proxy_hdr_parse(data, h.len, &again, &why) == PROXY_HDR_DONE);
    check(again.len == h.len && again.local == h.local && again.version == h.version);
    if (!h.local)
        check(memcmp(&again.src, &h.src, h.srclen) == 0 &&
              memcmp(&again.dst, &h.dst, h.dstlen) == 0);
    for (size_t n = 0; n < h.len; n++)
        check(proxy_hdr_parse(data, n, &again, &why) == PROXY_HDR_MORE);
    return 0;
}
