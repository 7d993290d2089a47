/* The PROXY protocol header parser (util/proxy_hdr.h): v1 lines and v2 binary headers as
 * haproxy sends them, byte by byte as they may arrive, and what must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util/netaddr.h"
#include "util/proxy_hdr.h"

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: the signature, version 2 and `cmd`, `fam`, the length, then `body`. */
static size_t v2(unsigned char *out, unsigned cmd, unsigned fam, const void *body, size_t n)
{
    memcpy(out, sig, 12);
    out[12] = (unsigned char)(0x20 | cmd);
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(n >> 8);
    out[15] = (unsigned char)n;
    if (n)
        memcpy(out + 16, body, n);
    return 16 + n;
}

static enum proxy_hdr_result parse(const void *data, size_t len, struct proxy_hdr *h)
{
    const char *why = NULL;
    enum proxy_hdr_result r = proxy_hdr_parse(data, len, h, &why);
    assert_non_null(why);
    if (r == PROXY_HDR_ERROR)
        assert_true(why[0] != '\0');
    return r;
}

static void assert_addr(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    char text[64];
    netaddr_format((const struct sockaddr *)ss, text, sizeof(text));
    assert_string_equal(text, ip);
    assert_int_equal(netaddr_port((const struct sockaddr *)ss), port);
}

/* Every proper prefix asks for more; the whole is DONE and stops at the header's end. */
static void assert_done_bytewise(const void *data, size_t hdrlen, size_t total, struct proxy_hdr *h)
{
    for (size_t n = 0; n < hdrlen; n++)
        assert_int_equal(parse(data, n, h), PROXY_HDR_MORE);
    assert_int_equal(parse(data, total, h), PROXY_HDR_DONE);
    assert_int_equal(h->len, hdrlen);
}

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char *in = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\nEHLO x\r\n";
    struct proxy_hdr h;
    assert_done_bytewise(in, strlen(in) - 8, strlen(in), &h);
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    assert_addr(&h.src, "192.0.2.7", 56324);
    assert_addr(&h.dst, "198.51.100.1", 25);
    assert_int_equal(h.srclen, sizeof(struct sockaddr_in));
}

static void test_v1_tcp6_and_unknown(void **state)
{
    (void)state;
    struct proxy_hdr h;
    const char *in = "PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n";
    assert_int_equal(parse(in, strlen(in), &h), PROXY_HDR_DONE);
    assert_addr(&h.src, "2001:db8::7", 1);
    assert_addr(&h.dst, "2001:db8::1", 65535);
    in = "PROXY UNKNOWN\r\n";
    assert_int_equal(parse(in, strlen(in), &h), PROXY_HDR_DONE);
    assert_true(h.local);
    assert_int_equal(h.len, strlen(in));
    in = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(parse(in, strlen(in), &h), PROXY_HDR_DONE);
    assert_true(h.local);
}

static void test_v1_errors(void **state)
{
    (void)state;
    struct proxy_hdr h;
    static const char *bad[] = {
        "EHLO client.example\r\n",                          /* a direct SMTP client */
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\n",     /* bare LF */
        "PROXY TCP4 192.0.2.7  198.51.100.1 56324 25\r\n",  /* two spaces */
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",      /* a field short */
        "PROXY TCP4 192.0.2.7 198.51.100.1 56324 25 x\r\n", /* one too many */
        "PROXY TCP4 2001:db8::7 198.51.100.1 1 25\r\n",     /* family mismatch */
        "PROXY TCP6 192.0.2.7 2001:db8::1 1 25\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n", /* port range */
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 25\r\n",
        "PROXY TCP4 192.0.2.7 198.51.100.1 +1 25\r\n",
        "PROXY TCP4 192.0.2 198.51.100.1 1 25\r\n",
        "PROXY UDP4 192.0.2.7 198.51.100.1 1 25\r\n",
        "PROXY\r\n",
        "proxy TCP4 192.0.2.7 198.51.100.1 1 25\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], strlen(bad[i]), &h) != PROXY_HDR_ERROR)
            fail_msg("accepted: %s", bad[i]);
    }
    /* A wrong first byte is refused at once, before a line ends. */
    assert_int_equal(parse("E", 1, &h), PROXY_HDR_ERROR);
    assert_int_equal(parse("PROXZ", 5, &h), PROXY_HDR_ERROR);
    /* NUL inside the line */
    assert_int_equal(parse("PROXY TCP4\0 1.2.3.4 1.2.3.4 1 1\r\n", 33, &h), PROXY_HDR_ERROR);
}

static void test_v1_length_bound(void **state)
{
    (void)state;
    struct proxy_hdr h;
    char line[200];
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    /* 105 bytes and CRLF = 107: the longest line; one more byte is too long. */
    memcpy(line + 105, "\r\n", 2);
    assert_int_equal(parse(line, 107, &h), PROXY_HDR_DONE);
    assert_int_equal(h.len, 107);
    memset(line + 105, 'x', 2);
    assert_int_equal(parse(line, 106, &h), PROXY_HDR_MORE);
    assert_int_equal(parse(line, 107, &h), PROXY_HDR_ERROR);
    memcpy(line + 106, "\r\n", 2);
    assert_int_equal(parse(line, 108, &h), PROXY_HDR_ERROR);
}

static void test_v2_tcp4_with_tlvs(void **state)
{
    (void)state;
    unsigned char body[64], buf[128];
    size_t n = 0;
    inet_pton(AF_INET, "192.0.2.7", body);
    inet_pton(AF_INET, "198.51.100.1", body + 4);
    body[8] = 0xDC, body[9] = 0x04; /* 56324 */
    body[10] = 0, body[11] = 25;
    n = 12;
    /* PP2_TYPE_AUTHORITY "mx" and a NOOP: skipped */
    memcpy(body + n, "\x02\x00\x02mx\x04\x00\x00", 8);
    n += 8;
    size_t len = v2(buf, 1, 0x11, body, n);
    memcpy(buf + len, "EHLO", 4);
    struct proxy_hdr h;
    assert_done_bytewise(buf, len, len + 4, &h);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_addr(&h.src, "192.0.2.7", 56324);
    assert_addr(&h.dst, "198.51.100.1", 25);
}

static void test_v2_tcp6(void **state)
{
    (void)state;
    unsigned char body[36], buf[64];
    inet_pton(AF_INET6, "2001:db8::7", body);
    inet_pton(AF_INET6, "2001:db8::1", body + 16);
    memcpy(body + 32, "\x00\x01\x00\x19", 4);
    size_t len = v2(buf, 1, 0x21, body, sizeof(body));
    struct proxy_hdr h;
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_DONE);
    assert_addr(&h.src, "2001:db8::7", 1);
    assert_addr(&h.dst, "2001:db8::1", 25);
    assert_int_equal(h.srclen, sizeof(struct sockaddr_in6));
}

static void test_v2_local(void **state)
{
    (void)state;
    unsigned char buf[64], body[12] = {0};
    struct proxy_hdr h;
    size_t len = v2(buf, 0, 0x00, NULL, 0); /* haproxy's health check */
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_DONE);
    assert_true(h.local);
    assert_int_equal(h.len, 16);
    len = v2(buf, 0, 0x11, body, sizeof(body)); /* LOCAL with addresses: ignored */
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_DONE);
    assert_true(h.local);
    assert_int_equal(h.len, 28);
    len = v2(buf, 1, 0x00, NULL, 0); /* PROXY, UNSPEC */
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_DONE);
    assert_true(h.local);
}

static void test_v2_errors(void **state)
{
    (void)state;
    unsigned char buf[2048], body[216] = {0};
    struct proxy_hdr h;
    size_t len = v2(buf, 1, 0x12, body, 12); /* UDP */
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_ERROR);
    len = v2(buf, 1, 0x31, body, 216); /* AF_UNIX */
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_ERROR);
    len = v2(buf, 1, 0x11, body, 11); /* IPv4 block too short */
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_ERROR);
    len = v2(buf, 1, 0x21, body, 35);
    assert_int_equal(parse(buf, len, &h), PROXY_HDR_ERROR);
    v2(buf, 2, 0x11, body, 12); /* command 2: refused at byte 13 */
    assert_int_equal(parse(buf, 13, &h), PROXY_HDR_ERROR);
    v2(buf, 1, 0x11, body, 12);
    buf[12] = 0x11; /* version 1 in a v2 head */
    assert_int_equal(parse(buf, 13, &h), PROXY_HDR_ERROR);
    memcpy(buf, sig, 12);
    buf[6] = 'X'; /* a broken signature is refused at its first wrong byte */
    assert_int_equal(parse(buf, 7, &h), PROXY_HDR_ERROR);
    /* The length field bounds the buffer a caller needs. */
    v2(buf, 1, 0x11, body, 0);
    buf[14] = (PROXY_HDR_V2_MAX + 1) >> 8;
    buf[15] = (PROXY_HDR_V2_MAX + 1) & 0xFF;
    assert_int_equal(parse(buf, 16, &h), PROXY_HDR_ERROR);
    buf[14] = PROXY_HDR_V2_MAX >> 8;
    buf[15] = PROXY_HDR_V2_MAX & 0xFF;
    assert_int_equal(parse(buf, 16, &h), PROXY_HDR_MORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),           cmocka_unit_test(test_v1_tcp6_and_unknown),
        cmocka_unit_test(test_v1_errors),         cmocka_unit_test(test_v1_length_bound),
        cmocka_unit_test(test_v2_tcp4_with_tlvs), cmocka_unit_test(test_v2_tcp6),
        cmocka_unit_test(test_v2_local),          cmocka_unit_test(test_v2_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
