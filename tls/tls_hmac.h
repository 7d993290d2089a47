/*
 * tls/tls_hmac.h — HMAC-MD5 (RFC 2104) from OpenSSL, for SMTP AUTH CRAM-MD5 as a client
 * (smtp/ links no crypto library; delivery/ passes this in through struct
 * smtp_client_auth).
 *
 * Stateless and thread-safe: each call fetches the MAC from OpenSSL's default library
 * context (an AUTH happens once per connection, so nothing is cached). Owns nothing.
 */
#ifndef RINGMAIL_TLS_HMAC_H
#define RINGMAIL_TLS_HMAC_H

#include <stddef.h>

/* HMAC-MD5 of `msg` under `key` into `out`: 0, or -1 (MD5 not available, e.g. a FIPS-only
 * provider). */
int tls_hmac_md5(const void *key, size_t keylen, const void *msg, size_t len,
                 unsigned char out[16]);

#endif
