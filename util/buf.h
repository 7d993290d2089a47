/*
 * util/buf.h — growable byte buffers with a hard limit.
 *
 * A struct buf owns its storage; buf_free() releases it and leaves an empty buffer, so an
 * idle owner holds no heap memory (sessions rely on this for their per-connection cost).
 * Appends beyond `limit` fail with -1 and leave the buffer unchanged; nothing is ever
 * silently truncated. Not thread-safe; zero-initialise (or buf_init) before use.
 */
#ifndef RINGMAIL_UTIL_BUF_H
#define RINGMAIL_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0 = no limit */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);
/* Make room for `extra` more bytes; -1 if that would pass the limit or memory ran out. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes; frees the storage when the buffer becomes empty. */
void buf_consume(struct buf *b, size_t n);

#endif
