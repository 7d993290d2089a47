/*
 * core/summary.h — the lines an operator reads at start-up, reload and shutdown.
 *
 * sendmail says little when it starts; an operator replacing it wants the log (syslog when
 * detached, stderr with --foreground: util/log.h decides) to say what the daemon actually
 * serves: each listener with its address, port and TLS mode; each server certificate with
 * its key type, subject CN, expiry and days left (a warning within SUMMARY_CERT_WARN_DAYS
 * days, an error once expired, since clients that verify will refuse it); at a reload,
 * which sections of the configuration changed; at the end, how long it ran.
 *
 * Each function writes its lines through util/log and returns nothing: a summary never
 * stops the daemon. Owns nothing; thread-safe as util/log is.
 */
#ifndef RINGMAIL_CORE_SUMMARY_H
#define RINGMAIL_CORE_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/config.h"
#include "tls/tls_ctx.h"

#define SUMMARY_CERT_WARN_DAYS 30

/* One line for a listener: name, address, port, workers and the TLS mode, "starttls" when
 * it offers STARTTLS (`have_certs`: certificates are loaded), else "none" and why. */
void summary_listener(const struct config_listener *l, unsigned workers, bool have_certs);
/* One line per certificate of `ctx` (NULL: the line that says STARTTLS is not offered). */
void summary_certs(const struct tls_ctx *ctx);
/* At a reload: one line naming the top-level sections of the effective configuration that
 * differ between `old` and `neu` ("nothing" when none does). */
void summary_changes(const struct config *old, const struct config *neu);
/* `seconds` as "3d4h5m6s" (the largest units only as needed) into out[0..len). */
void summary_duration(char *out, size_t len, time_t seconds);

#endif
