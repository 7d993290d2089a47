/* The metrics listener's HTTP request head parser and answers (util/http_req.h): what a
 * scraper sends, byte by byte as it may arrive, what must be a 400, and the responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/http_req.h"

static enum http_req_result parse(const char *text, struct http_req *r)
{
    return http_req_parse(text, strlen(text), r);
}

static void test_scraper_requests(void **state)
{
    (void)state;
    struct http_req r;
    const char *prom = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9465\r\nUser-Agent: "
                       "Prometheus/2.45.0\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n"
                       "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
    assert_int_equal(parse(prom, &r), HTTP_REQ_DONE);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/metrics");
    assert_int_equal(r.len, strlen(prom));
    assert_int_equal(http_req_status(&r, "/metrics"), 200);

    /* curl with a query, HTTP/1.0 without headers, bare LF line ends */
    assert_int_equal(parse("GET /metrics?name[]=x HTTP/1.0\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_string_equal(r.path, "/metrics");
    assert_int_equal(parse("HEAD /metrics HTTP/1.1\nHost: x\n\n", &r), HTTP_REQ_DONE);
    assert_int_equal(http_req_status(&r, "/metrics"), 200);

    /* what follows the head (a body nobody reads) is not the parser's */
    assert_int_equal(parse("GET / HTTP/1.1\r\n\r\nrest", &r), HTTP_REQ_DONE);
    assert_int_equal(r.len, strlen("GET / HTTP/1.1\r\n\r\n"));
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    struct http_req r;
    for (size_t n = 0; n < strlen(req); n++)
        assert_int_equal(http_req_parse(req, n, &r), HTTP_REQ_MORE);
    assert_int_equal(http_req_parse(req, strlen(req), &r), HTTP_REQ_DONE);
}

static void test_status(void **state)
{
    (void)state;
    struct http_req r;
    assert_int_equal(parse("GET /other HTTP/1.1\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(http_req_status(&r, "/metrics"), 404);
    assert_int_equal(parse("GET /metricsx HTTP/1.1\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(http_req_status(&r, "/metrics"), 404);
    assert_int_equal(parse("POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\n", &r),
                     HTTP_REQ_DONE);
    assert_int_equal(http_req_status(&r, "/metrics"), 405);
    /* methods are case-sensitive (RFC 9110 9.1) */
    assert_int_equal(parse("get /metrics HTTP/1.1\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(http_req_status(&r, "/metrics"), 405);
    assert_int_equal(http_req_status(NULL, "/metrics"), 400);
}

static void test_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "hello\r\n\r\n",
        "GET /metrics\r\n\r\n",                         /* HTTP/0.9 */
        "GET /metrics HTTP/2.0\r\n\r\n",                /* not HTTP/1.x */
        "GET /metrics HTTP/1.1 x\r\n\r\n",              /* a fourth word */
        "GET ?x=1 HTTP/1.1\r\n\r\n",                    /* a query without a path */
        "GET  /metrics HTTP/1.1\r\n\r\n",               /* two spaces */
        " GET /metrics HTTP/1.1\r\n\r\n",               /* no method */
        "G(T /metrics HTTP/1.1\r\n\r\n",                /* not a token */
        "GET /met\x01rics HTTP/1.1\r\n\r\n",            /* a control character */
        "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",    /* a field without its name */
        "GET /metrics HTTP/1.1\r\n: value\r\n\r\n",     /* an empty name */
        "GET /metrics HTTP/1.1\r\nHo st: x\r\n\r\n",    /* a space in the name */
        "GET /metrics HTTP/1.1\r\nHost: a\rb\r\n\r\n",  /* a bare CR */
        "GET /metrics HTTP/1.1\r\n \r\n\r\n",           /* a line of a space */
        "GETTTTTTTTTTTTTTTTT /metrics HTTP/1.1\r\n\r\n" /* a method longer than any */
    };
    struct http_req r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &r) != HTTP_REQ_BAD)
            fail_msg("accepted: %s", bad[i]);
    }
    char nul[] = "GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(http_req_parse(nul, sizeof(nul) - 1, &r), HTTP_REQ_BAD);
}

/* 8 KiB of head without its end is a 400, whatever comes next; a head that ends just
 * within it is fine. */
static void test_size_limit(void **state)
{
    (void)state;
    char *big = malloc(HTTP_REQ_MAX + 100);
    assert_non_null(big);
    size_t n = (size_t)snprintf(big, HTTP_REQ_MAX, "GET /metrics HTTP/1.1\r\nX: ");
    memset(big + n, 'a', HTTP_REQ_MAX + 100 - n);
    struct http_req r;
    assert_int_equal(http_req_parse(big, HTTP_REQ_MAX - 1, &r), HTTP_REQ_MORE);
    assert_int_equal(http_req_parse(big, HTTP_REQ_MAX, &r), HTTP_REQ_BAD);
    assert_int_equal(http_req_parse(big, HTTP_REQ_MAX + 100, &r), HTTP_REQ_BAD);
    memcpy(big + HTTP_REQ_MAX - 4, "\r\n\r\n", 4);
    assert_int_equal(http_req_parse(big, HTTP_REQ_MAX + 100, &r), HTTP_REQ_DONE);
    assert_int_equal(r.len, HTTP_REQ_MAX);
    free(big);
}

static void test_responses(void **state)
{
    (void)state;
    struct buf out = {0};
    struct http_req r;
    const char *type = "text/plain; version=0.0.4; charset=utf-8";
    assert_int_equal(parse("GET /metrics HTTP/1.1\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(http_req_respond(&out, &r, 200, type, "a 1\n", 4), 0);
    assert_int_equal(out.len, strlen("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
                                     "charset=utf-8\r\nContent-Length: 4\r\nConnection: "
                                     "close\r\n\r\na 1\n"));
    assert_memory_equal(out.data + out.len - 8, "\r\n\r\na 1\n", 8);
    buf_free(&out);

    /* HEAD: the same head, no body */
    assert_int_equal(parse("HEAD /metrics HTTP/1.1\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(http_req_respond(&out, &r, 200, type, "a 1\n", 4), 0);
    assert_non_null(strstr(out.data, "Content-Length: 4\r\n"));
    assert_memory_equal(out.data + out.len - 4, "\r\n\r\n", 4);
    buf_free(&out);

    assert_int_equal(parse("PUT /metrics HTTP/1.1\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(http_req_respond(&out, &r, 405, type, NULL, 0), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_true(strncmp(out.data, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    assert_non_null(strstr(out.data, "\r\nAllow: GET, HEAD\r\n"));
    assert_non_null(strstr(out.data, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(out.data, "\r\nContent-Length: 19\r\n"));
    assert_non_null(strstr(out.data, "\r\n\r\nMethod Not Allowed\n"));
    buf_free(&out);

    assert_int_equal(http_req_respond(&out, NULL, 400, type, NULL, 0), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_true(strncmp(out.data, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    assert_null(strstr(out.data, "Allow:"));
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scraper_requests), cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_status),           cmocka_unit_test(test_bad),
        cmocka_unit_test(test_size_limit),       cmocka_unit_test(test_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
