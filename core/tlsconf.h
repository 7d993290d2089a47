/*
 * core/tlsconf.h — the configuration's tls section made into OpenSSL contexts.
 *
 * One server context per worker thread (OpenSSL 3.0 loses most of its handshake rate to
 * lock contention when threads share a library context; tls/tls_ctx.h), built at start-up,
 * on SIGHUP and for --tls-info. The privileged parent reads the files (keys may be readable
 * by root only), the engine builds the contexts from what it read. The built-in default,
 * with no certificates, gets demo ones made on first run in <the spool's parent>/tls. Not
 * thread-safe: the main thread builds, the runconf owns what is built.
 */
#ifndef RINGMAIL_CORE_TLSCONF_H
#define RINGMAIL_CORE_TLSCONF_H

#include <stddef.h>

#include "core/config.h"
#include "tls/tls_ctx.h"
#include "util/fileset.h"

/* Reads every file the tls section names into `files` (the privileged parent, at start-up
 * and at every reload; failures are recorded there and reported by tlsconf_server as it
 * replays them). The built-in default's demo certificates are made first when missing. -1
 * with `err` only when the demo certificates cannot be made. */
int tlsconf_read_files(const struct config *cfg, struct fileset *files, char *err, size_t errlen);

/* n server contexts into *out (the caller frees them with tlsconf_free), the i-th built on
 * libs[i] (libs NULL: each on a library of its own), reading the files through `files`
 * (NULL: from disk, making the demo certificates if they are missing). 0 with *out NULL
 * when the configuration has no certificates (STARTTLS is then not offered); -1 with `err`
 * naming the file or setting at fault. */
int tlsconf_server(const struct config *cfg, unsigned n, struct tls_lib **libs,
                   struct fileset *files, struct tls_ctx ***out, char *err, size_t errlen);
/* The same for the delivery side: n client contexts (always: STARTTLS to a next hop needs
 * no certificate of ours), with tls.client_cert/client_key when set. */
int tlsconf_client(const struct config *cfg, unsigned n, struct tls_lib **libs,
                   struct fileset *files, struct tls_ctx ***out, char *err, size_t errlen);
void tlsconf_free(struct tls_ctx **ctxs, unsigned n);

#endif
