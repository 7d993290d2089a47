/* libFuzzer harness for message preparation and the address-list parser.
 *
 * The first two octets choose the settings (-t, -i, small line/header/size limits) and
 * the split pattern; the rest is the message. It is prepared twice: whole, and in chunks
 * whose sizes come from a generator seeded by the input. Both runs must agree exactly
 * (result, error text, header, body, recipients), and an accepted message must keep the
 * promises the daemon relies on: CRLF lines only (no bare CR or LF, no NUL), a header of
 * complete lines handed over once and before any body octet, the limits respected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/msgprep.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

struct capture {
    struct buf header, body, rcpts;
    int header_calls;
    bool body_before_header;
};

static int on_header(void *arg, const struct msgprep *m)
{
    struct capture *c = arg;
    c->header_calls++;
    check(buf_append(&c->header, m->header.data, m->header.len) == 0);
    for (size_t i = 0; i < m->n_rcpts; i++) {
        check(m->rcpts[i][0] != '\0');
        check(buf_append(&c->rcpts, m->rcpts[i], strlen(m->rcpts[i]) + 1) == 0);
    }
    return 0;
}

static int on_body(void *arg, const char *bytes, size_t len)
{
    struct capture *c = arg;
    if (c->header_calls == 0)
        c->body_before_header = true;
    check(len > 0);
    check(buf_append(&c->body, bytes, len) == 0);
    return 0;
}

/* Every CR starts a CRLF, every LF ends one, no NUL, lines within max_line. */
static void check_crlf(const struct buf *b, size_t max_line)
{
    size_t line = 0;
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        check(c != '\0');
        if (c == '\r') {
            check(i + 1 < b->len && b->data[i + 1] == '\n');
            check(max_line == 0 || line <= max_line);
            line = 0;
            i++;
        } else {
            check(c != '\n');
            line++;
        }
    }
    check(line == 0); /* the last line is complete */
}

static int prepare(const struct msgprep_settings *base, const uint8_t *msg, size_t len,
                   uint32_t seed, struct capture *c, char *error, uint64_t *size)
{
    struct msgprep_settings s = *base;
    s.on_header = on_header;
    s.on_body = on_body;
    s.arg = c;
    struct msgprep m;
    int rc = msgprep_init(&m, &s);
    for (size_t off = 0; rc == 0 && off < len && !m.done;) {
        size_t n = len - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t want = (seed >> 16) % 9; /* 0..8, empty chunks included */
            n = want < n ? want : n;
        }
        rc = msgprep_feed(&m, msg + off, n);
        off += n;
    }
    if (rc == 0)
        rc = msgprep_finish(&m);
    memcpy(error, m.error, sizeof(m.error));
    *size = m.size;
    msgprep_free(&m);
    return rc;
}

static void capture_free(struct capture *c)
{
    buf_free(&c->header);
    buf_free(&c->body);
    buf_free(&c->rcpts);
}

static bool buf_same(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void fuzz_address_list(const uint8_t *data, size_t size)
{
    char **list = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (msgprep_address_list((const char *)data, size, &list, &n, &why) != 0)
        check(why != NULL && why[0] != '\0');
    for (size_t i = 0; i < n; i++) {
        check(list[i][0] != '\0');
        check(strpbrk(list[i], "\r\n") == NULL);
        free(list[i]);
    }
    free(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const char *const cmdline[] = {"skip@example.org", "Other <o@example.org>"};
    uint8_t knobs = data[0];
    struct msgprep_settings s = {
        .read_recipients = knobs & 1,
        .ignore_dots = knobs & 2,
        .max_line = knobs & 4 ? 40 : 0,
        .max_header = knobs & 8 ? 64 : 0,
        .max_size = knobs & 16 ? 200 : 0,
        .cmdline_rcpts = cmdline,
        .n_cmdline_rcpts = knobs & 32 ? 2 : 1,
    };
    uint32_t seed = data[1] | 1u;
    const uint8_t *msg = data + 2;
    size_t len = size - 2;

    struct capture whole = {0}, split = {0};
    char error_whole[256], error_split[256];
    uint64_t size_whole, size_split;
    int rc_whole = prepare(&s, msg, len, 0, &whole, error_whole, &size_whole);
    int rc_split = prepare(&s, msg, len, seed, &split, error_split, &size_split);

    check(rc_whole == rc_split);
    check(strcmp(error_whole, error_split) == 0);
    check((rc_whole == 0) == (error_whole[0] == '\0'));
    if (rc_whole == 0) {
        check(buf_same(&whole.header, &split.header));
        check(buf_same(&whole.body, &split.body));
        check(buf_same(&whole.rcpts, &split.rcpts));
        check(whole.header_calls == 1 && !whole.body_before_header);
        check(whole.rcpts.len > 0); /* never a message without recipients */
        check(size_whole == whole.header.len + whole.body.len);
        check(s.max_size == 0 || size_whole <= s.max_size);
        check(s.max_header == 0 || whole.header.len <= s.max_header);
        check_crlf(&whole.header, s.max_line);
        check_crlf(&whole.body, s.max_line);
        /* the header holds fields only: Bcc never survives */
        for (size_t i = 0; i + 4 <= whole.header.len; i++)
            if (i == 0 || whole.header.data[i - 1] == '\n')
                check(strncasecmp(whole.header.data + i, "bcc:", 4) != 0);
    }
    capture_free(&whole);
    capture_free(&split);

    fuzz_address_list(msg, len);
    return 0;
}
