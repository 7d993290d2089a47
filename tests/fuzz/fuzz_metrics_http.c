/* libFuzzer harness for the metrics listener's request head parser and answers
 * (util/http_req.h): on metrics.listen these are the bytes anyone who reaches the port
 * sends.
 *
 * Whatever the input: a DONE head is within HTTP_REQ_MAX bytes and never claims more
 * bytes than it was given, its method and path are terminated and printable; MORE only
 * below HTTP_REQ_MAX bytes; only the bytes up to the head's end decide (the same prefix
 * gives the same verdict, every shorter one asks for more); and every verdict has an
 * answer that is one well-formed response head with Connection: close. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/http_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    check(n < cap);
    for (size_t i = 0; i < n; i++)
        check((unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f);
}

static void check_answer(const struct http_req *req)
{
    struct buf out = {0};
    int status = http_req_status(req, "/metrics");
    check(status == 200 || status == 400 || status == 404 || status == 405);
    check(http_req_respond(&out, req, status, "text/plain", "x 1\n", 4) == 0);
    check(out.len > 12 && memcmp(out.data, "HTTP/1.1 ", 9) == 0);
    check(memmem(out.data, out.len, "\r\nConnection: close\r\n", 21) != NULL);
    check(memmem(out.data, out.len, "\r\n\r\n", 4) != NULL);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct http_req r;
    enum http_req_result v = http_req_parse(text, size, &r);
    if (v == HTTP_REQ_MORE)
        check(size < HTTP_REQ_MAX);
    if (v == HTTP_REQ_BAD)
        check_answer(NULL);
    if (v != HTTP_REQ_DONE)
        return 0;
    check(r.len > 0 && r.len <= size && r.len <= HTTP_REQ_MAX);
    check(r.method[0] != '\0' && r.path[0] != '\0');
    check_printable(r.method, sizeof(r.method));
    check_printable(r.path, sizeof(r.path));
    check_answer(&r);
    struct http_req again;
    check(http_req_parse(text, r.len, &again) == HTTP_REQ_DONE);
    check(again.len == r.len && strcmp(again.method, r.method) == 0 &&
          strcmp(again.path, r.path) == 0);
    for (size_t n = 0; n < r.len; n++)
        check(http_req_parse(text, n, &again) == HTTP_REQ_MORE);
    return 0;
}
