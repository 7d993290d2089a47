/*
 * util/log.h — the diagnostic ladder (after Postfix's msg_*).
 *
 * One line per event. In the foreground lines go to stderr with a timestamp, otherwise to
 * syslog(3) under LOG_MAIL with the ident given to log_open(). Thread-safe: a line is
 * formatted into a local buffer and written with one call. log_fatal() logs and exits with
 * EX_SOFTWARE-style status 1; log_panic() is for broken invariants only (never for
 * anything a network peer can cause) and aborts.
 */
#ifndef RINGMAIL_UTIL_LOG_H
#define RINGMAIL_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* to_stderr: foreground mode. Before log_open() everything goes to stderr. */
void log_open(const char *ident, bool to_stderr);
void log_set_level(enum log_level min);
void log_close(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
