/*
 * util/log.h — the diagnostic ladder (after Postfix's msg_*), and a limit on lines that a
 * client can make the daemon repeat.
 *
 * One line per event, carrying "<ident>[<pid>]: ". Lines go to stderr (with a syslog-style
 * timestamp in front, so operators grep one format in both places), to syslog(3) under
 * LOG_MAIL, or to both: a daemon about to detach logs to both, so what it says while
 * starting reaches the terminal that started it and the log. Before log_configure() lines go
 * to stderr as "ringmaild". log_configure() may be called again at any time (log.ident
 * changed by a reload, syslog alone once detached); the ident is copied, so the caller's
 * string may go away (openlog(3) keeps the pointer it is given).
 *
 * Format (log_set_format): text, as above, or JSON (util/log_json.h): every line one JSON
 * object with the same event, on stderr without the time stamp in front (the object has
 * its own "time") and as the message of the syslog line. Until log_set_format() is called
 * lines are text (a configuration that cannot be read is reported in text).
 *
 * Thread-safe: a line is formatted into a local buffer and written with one call per target.
 * log_fatal() logs and exits with status 1; log_panic() is for broken invariants only (never
 * for anything a network peer can cause) and aborts.
 *
 * Rate limits (struct log_limit): a call site that a client can trigger at will (a refused
 * connection, a failed commit) logs through log_limited(), which writes at most one line per
 * interval for each group of keys and counts the others. Once the interval is over, the
 * next call through that limit (or log_limit_flush()) writes the count, "N more like this
 * were not logged in S s: <the line that was logged>", as a line of its own: the repeated
 * line keeps the exact shape that log watchers (fail2ban) match. Keys are hashed into
 * LOG_LIMIT_GROUPS groups: with the client's address as key, one client cannot hide
 * another's lines unless the two share a group.
 */
#ifndef RINGMAIL_UTIL_LOG_H
#define RINGMAIL_UTIL_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Where lines go: a mask for log_configure(). */
#define LOG_TO_STDERR 0x1u
#define LOG_TO_SYSLOG 0x2u

/* The longest ident kept, with its NUL; a longer one is cut. */
#define LOG_IDENT_MAX 64

/* Sets the name every line carries (NULL keeps the current one) and where lines go (a mask
 * of LOG_TO_*; 0 is taken as LOG_TO_STDERR, so nothing is ever silently dropped). */
void log_configure(const char *ident, unsigned targets);
/* log_configure(ident, the targets in use): a reload's log.ident. */
void log_set_ident(const char *ident);
void log_set_level(enum log_level min);
/* log.format: the next lines are text or JSON (a reload applies it like log.ident). */
void log_set_format(enum log_format format);
/* "text" or "json" into *out; false for anything else. */
bool log_format_parse(const char *name, enum log_format *out);
/* Closes syslog; later lines go to stderr. */
void log_close(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define LOG_LIMIT_GROUPS 64
#define LOG_LIMIT_LINE   320

struct log_limit_group {
    bool used;
    enum log_level lvl;
    uint64_t since_ms;         /* when `line` was logged: the group's interval starts */
    uint64_t last_ms;          /* when the last line not logged came */
    uint64_t suppressed;       /* lines not logged since `line` */
    char line[LOG_LIMIT_LINE]; /* the line logged at since_ms, repeated with the count */
};

/* One per call site, static, initialized with LOG_LIMIT_INIT(interval in ms). */
struct log_limit {
    pthread_mutex_t lock;
    uint32_t interval_ms;
    struct log_limit_group group[LOG_LIMIT_GROUPS];
};

#define LOG_LIMIT_INIT(ms)                                                                         \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER, .interval_ms = (ms)                                     \
    }

/* Logs the line unless a line of the same key group went out through `l` less than its
 * interval ago, in which case the line is only counted. `key` (NULL = "") says which lines
 * are alike: e.g. the client's address. Returns whether the line was written. Thread-safe. */
bool log_limited(struct log_limit *l, enum log_level lvl, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with the time given (milliseconds on a monotonic clock): the seam for tests. */
bool log_limited_at(struct log_limit *l, uint64_t now_ms, enum log_level lvl, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Writes the count of every group that has lines not logged (at shutdown, so that no count
 * is lost) and forgets the groups. */
void log_limit_flush(struct log_limit *l);

#endif
