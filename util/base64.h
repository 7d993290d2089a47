/*
 * util/base64.h — RFC 4648 base64 (the standard alphabet, with '=' padding), as SMTP AUTH
 * (RFC 4954) and MIME encoded-words (RFC 2047 "B") use it. Pure; owns nothing.
 */
#ifndef RINGMAIL_UTIL_BASE64_H
#define RINGMAIL_UTIL_BASE64_H

#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"

/* Octets needed to encode `len` octets (without a NUL). */
#define BASE64_LEN(len) ((((len) + 2) / 3) * 4)

/* Appends the encoding of `len` octets at `p` to `out`: 0, or -1 when memory runs out. */
int base64_append(struct buf *out, const unsigned char *p, size_t len);

/* Decodes the `len` characters at `in` into `out` (of `outlen`): the decoded length, or -1
 * when the text is not canonical base64 (a character outside the alphabet, white space
 * included, a length that is not a multiple of 4, misplaced padding) or does not fit.
 * RFC 4954 4: a client's response is exactly that, so nothing is skipped. */
ssize_t base64_decode(const char *in, size_t len, unsigned char *out, size_t outlen);

#endif
