/*
 * util/http_req.c — the request head parser and the answers (util/http_req.h).
 */
#include "util/http_req.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"

/* RFC 9110 5.6.2's tchar. */
static bool http_req_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The head's end: the offset just past the empty line, or 0 when there is none yet. */
static size_t http_req_end(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (i + 1 < len && data[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* One line without its CRLF or LF; a CR anywhere else is malformed. */
static bool http_req_line(const char **p, const char *end, const char **line, size_t *n)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return false;
    *line = *p;
    *n = (size_t)(nl - *p);
    if (*n && (*line)[*n - 1] == '\r')
        (*n)--;
    *p = nl + 1;
    return memchr(*line, '\r', *n) == NULL && memchr(*line, '\0', *n) == NULL;
}

static bool http_req_request_line(const char *line, size_t n, struct http_req *out)
{
    const char *sp1 = memchr(line, ' ', n);
    if (!sp1 || sp1 == line || (size_t)(sp1 - line) >= sizeof(out->method))
        return false;
    for (const char *c = line; c < sp1; c++)
        if (!http_req_tchar((unsigned char)*c))
            return false;
    const char *target = sp1 + 1, *end = line + n;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (!sp2 || sp2 == target || end - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1'))
        return false;
    for (const char *c = target; c < sp2; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return false;
    /* origin-form only ("/metrics?x"); "*" and absolute forms name nothing served here */
    const char *q = memchr(target, '?', (size_t)(sp2 - target));
    size_t plen = (size_t)((q ? q : sp2) - target);
    if (plen == 0) /* a query without a path */
        return false;
    if (plen >= sizeof(out->path))
        plen = sizeof(out->path) - 1; /* a long path is no path of ours: 404 either way */
    memcpy(out->method, line, (size_t)(sp1 - line));
    out->method[sp1 - line] = '\0';
    memcpy(out->path, target, plen);
    out->path[plen] = '\0';
    return true;
}

static bool http_req_field(const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line)
        return false;
    for (const char *c = line; c < colon; c++)
        if (!http_req_tchar((unsigned char)*c))
            return false;
    return true;
}

enum http_req_result http_req_parse(const char *data, size_t len, struct http_req *out)
{
    memset(out, 0, sizeof(*out));
    size_t end = http_req_end(data, len < HTTP_REQ_MAX ? len : HTTP_REQ_MAX);
    if (!end)
        return len >= HTTP_REQ_MAX ? HTTP_REQ_BAD : HTTP_REQ_MORE;
    const char *p = data, *stop = data + end, *line;
    size_t n;
    if (!http_req_line(&p, stop, &line, &n) || !http_req_request_line(line, n, out))
        return HTTP_REQ_BAD;
    while (http_req_line(&p, stop, &line, &n) && n)
        if (!http_req_field(line, n))
            return HTTP_REQ_BAD;
    if (p != stop || n)
        return HTTP_REQ_BAD;
    out->len = end;
    return HTTP_REQ_DONE;
}

int http_req_status(const struct http_req *req, const char *path)
{
    if (!req)
        return 400;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return 405;
    return strcmp(req->path, path) == 0 ? 200 : 404;
}

int http_req_respond(struct buf *out, const struct http_req *req, int status,
                     const char *content_type, const char *body, size_t body_len)
{
    bool head = req && strcmp(req->method, "HEAD") == 0;
    if (status == 200)
        return buf_printf(out,
                          "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          content_type, body_len) < 0 ||
                       (!head && buf_append(out, body, body_len) < 0)
                   ? -1
                   : 0;
    const char *reason = status == 404   ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                                         : "Bad Request";
    size_t text_len = strlen(reason) + 1;
    return buf_printf(out,
                      "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s\n",
                      status, reason, text_len, status == 405 ? "Allow: GET, HEAD\r\n" : "",
                      head ? "" : reason) < 0
               ? -1
               : 0;
}
