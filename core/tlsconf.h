/*
 * core/tlsconf.h — the configuration's tls section made into OpenSSL contexts.
 *
 * One server context per worker thread (OpenSSL 3.0 loses most of its handshake rate to
 * lock contention when threads share a library context; tls/tls_ctx.h), built at start-up,
 * on SIGHUP and for --tls-info. The built-in default, with no certificates, gets demo ones
 * made on first run in <the spool's parent>/tls. Not thread-safe: the main thread builds,
 * the runconf owns what is built.
 */
#ifndef RINGMAIL_CORE_TLSCONF_H
#define RINGMAIL_CORE_TLSCONF_H

#include <stddef.h>

#include "core/config.h"
#include "tls/tls_ctx.h"

/* n server contexts into *out (the caller frees them with tlsconf_free). 0 with *out NULL
 * when the configuration has no certificates (STARTTLS is then not offered); -1 with
 * `err` naming the file or setting at fault. */
int tlsconf_server(const struct config *cfg, unsigned n, struct tls_ctx ***out, char *err,
                   size_t errlen);
void tlsconf_free(struct tls_ctx **ctxs, unsigned n);

#endif
