/*
 * util/http_req.h — a small HTTP/1.x request head parser and the answers of a server that
 * serves one resource (the metrics listener, core/metrics_http.h). Pure: bytes in, a verdict
 * out; no I/O, no allocation.
 *
 * A request head is the request line and the header fields up to the empty line, at most
 * HTTP_REQ_MAX bytes. Only what a scraper sends is understood: "METHOD SP target SP
 * HTTP/1.x", header fields "name: value" (names are tokens; values are not interpreted, a
 * body is never read: every answer closes the connection). Bare LF line ends are accepted,
 * as RFC 9112 2.2 allows; anything else malformed is HTTP_REQ_BAD.
 */
#ifndef RINGMAIL_UTIL_HTTP_REQ_H
#define RINGMAIL_UTIL_HTTP_REQ_H

#include <stddef.h>

struct buf;

#define HTTP_REQ_MAX 8192 /* bytes of a request head; more is a 400 */

enum http_req_result {
    HTTP_REQ_MORE, /* no end of the head yet (and fewer than HTTP_REQ_MAX bytes) */
    HTTP_REQ_DONE, /* a complete, well-formed head: `out` is filled */
    HTTP_REQ_BAD,  /* malformed, or no end within HTTP_REQ_MAX bytes */
};

struct http_req {
    char method[16]; /* "GET" */
    char path[256];  /* the target's path, without its query ("/metrics") */
    size_t len;      /* bytes of the head, its empty line included */
};

/* Parses the head at the start of data[0..len). Only the bytes up to the head's end are
 * read. */
enum http_req_result http_req_parse(const char *data, size_t len, struct http_req *out);

/* The answer of a server that has one resource, `path`, served by GET and HEAD: its status
 * (200; 404 for another path; 405 for another method; 400 for `req` NULL, a bad request). */
int http_req_status(const struct http_req *req, const char *path);

/* Appends a whole response, "Connection: close" always: for 200, `body` (of `content_type`)
 * with its Content-Length, the body itself left out for HEAD; for the errors a short text
 * body, and for 405 "Allow: GET, HEAD". 0, or -1 when `out` is full. */
int http_req_respond(struct buf *out, const struct http_req *req, int status,
                     const char *content_type, const char *body, size_t body_len);

#endif
