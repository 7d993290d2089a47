/*
 * util/xtext.h — RFC 3461 xtext, the encoding of DSN's ENVID and ORCPT (and ringmail's
 * own FULLNAME=): octets 33-126 other than '+' and '=' stand for themselves, every other
 * octet is "+HH". Decoding takes lower-case hex too, as Postfix and sendmail do.
 * Pure; owns nothing.
 */
#ifndef RINGMAIL_UTIL_XTEXT_H
#define RINGMAIL_UTIL_XTEXT_H

#include <stddef.h>
#include <sys/types.h>

/* `in` (a C string) as xtext into `out`, always NUL-terminated when outlen > 0 and cut
 * only between encoded octets; returns the length the whole encoding needs, as snprintf. */
size_t xtext_encode(const char *in, char *out, size_t outlen);

/* The `len` octets of xtext at `in` decoded into `out` and NUL-terminated: the decoded
 * length, or -1 when a '+' is not followed by two hex digits or `out` (of `outlen`) is too
 * small. Octets that need encoding but stand bare are passed through: the caller checks
 * what it accepts. */
ssize_t xtext_decode(const char *in, size_t len, char *out, size_t outlen);

#endif
