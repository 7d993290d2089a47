#include "util/log.h"

#include "util/log_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_min = LOG_LVL_INFO;

/* Guards the ident and the targets. Every syslog(3) call is made under it too: openlog()
 * keeps a pointer to log_ident, which may only change while no line is going out. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned log_targets = LOG_TO_STDERR;
static bool log_syslog_open;
static char log_ident[LOG_IDENT_MAX] = "ringmaild";
static enum log_format log_format = LOG_FORMAT_TEXT;
/* The name syslog puts in front of the line, for a JSON line's "host". */
static char log_host[LOG_IDENT_MAX];

void log_configure(const char *ident, unsigned targets)
{
    if (!targets)
        targets = LOG_TO_STDERR;
    pthread_mutex_lock(&log_lock);
    bool renamed = ident && strcmp(ident, log_ident) != 0;
    if (renamed)
        snprintf(log_ident, sizeof(log_ident), "%s", ident);
    if ((targets & LOG_TO_SYSLOG) && (!log_syslog_open || renamed)) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
        log_syslog_open = true;
    } else if (!(targets & LOG_TO_SYSLOG) && log_syslog_open) {
        closelog();
        log_syslog_open = false;
    }
    log_targets = targets;
    pthread_mutex_unlock(&log_lock);
}

void log_set_ident(const char *ident)
{
    pthread_mutex_lock(&log_lock);
    unsigned targets = log_targets;
    pthread_mutex_unlock(&log_lock);
    log_configure(ident, targets);
}

void log_set_level(enum log_level min)
{
    log_min = min;
}

void log_set_format(enum log_format format)
{
    pthread_mutex_lock(&log_lock);
    if (format == LOG_FORMAT_JSON && !log_host[0] && gethostname(log_host, sizeof(log_host)) < 0)
        snprintf(log_host, sizeof(log_host), "localhost");
    log_host[sizeof(log_host) - 1] = '\0';
    log_format = format;
    pthread_mutex_unlock(&log_lock);
}

bool log_format_parse(const char *name, enum log_format *out)
{
    if (strcmp(name, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcmp(name, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else
        return false;
    return true;
}

void log_close(void)
{
    log_configure(NULL, LOG_TO_STDERR);
}

static void log_write(const char *out, size_t len)
{
    if (write(STDERR_FILENO, out, len) < 0)
        return;
}

static void log_write_stderr(const char *ident, const char *tag, const char *line)
{
    /* Same shape as a syslog line so operators grep one format in both modes. */
    char out[2200];
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
    int len =
        snprintf(out, sizeof(out), "%s %s[%ld]: %s%s\n", stamp, ident, (long)getpid(), tag, line);
    if (len > (int)sizeof(out) - 1) {
        len = (int)sizeof(out) - 1;
        out[len - 1] = '\n';
    }
    log_write(out, (size_t)len);
}

/* The line as one JSON object on stderr (with a newline) and to syslog. */
static void log_line_json(enum log_level lvl, int prio, const char *line)
{
    static const char *const name[] = {"debug", "info", "warning", "error"};
    /* on the stack: a thread-local buffer would cost every thread 32 KiB, JSON or not */
    char out[LOG_JSON_MAX + 1];
    struct log_json_meta m = {.pid = (long)getpid(), .level = name[lvl]};

    clock_gettime(CLOCK_REALTIME, &m.when);
    pthread_mutex_lock(&log_lock);
    unsigned targets = log_targets;
    m.ident = log_ident;
    m.host = log_host;
    size_t len = log_json_format(out, sizeof(out) - 1, &m, line);
    if (targets & LOG_TO_SYSLOG)
        syslog(prio, "%s", out);
    pthread_mutex_unlock(&log_lock);
    if (targets & LOG_TO_STDERR) {
        out[len] = '\n';
        log_write(out, len + 1);
    }
}

static void log_line(enum log_level lvl, const char *line)
{
    static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    static const char *const tag[] = {"debug: ", "", "warning: ", "error: "};
    char ident[LOG_IDENT_MAX];

    pthread_mutex_lock(&log_lock);
    if (log_format == LOG_FORMAT_JSON) {
        pthread_mutex_unlock(&log_lock);
        log_line_json(lvl, prio[lvl], line);
        return;
    }
    unsigned targets = log_targets;
    memcpy(ident, log_ident, sizeof(ident));
    if (targets & LOG_TO_SYSLOG)
        syslog(prio[lvl], "%s%s", tag[lvl], line);
    pthread_mutex_unlock(&log_lock);
    if (targets & LOG_TO_STDERR)
        log_write_stderr(ident, tag[lvl], line);
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    char line[2048];

    if (lvl < log_min)
        return;
    if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
        return;
    log_line(lvl, line);
}

#define LOG_FN(name, lvl)                                                                          \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_vmsg(lvl, fmt, ap);                                                                    \
        va_end(ap);                                                                                \
    }
LOG_FN(log_debug, LOG_LVL_DEBUG)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_error, LOG_LVL_ERROR)

void log_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_LVL_ERROR, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_LVL_ERROR, fmt, ap);
    va_end(ap);
    abort();
}

/* FNV-1a: keys are short (an address), and the spread only has to be fair. */
static unsigned log_limit_group_of(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % LOG_LIMIT_GROUPS;
}

/* Called with l->lock held: says how many lines of `g` were not logged, and frees it. */
static void log_limit_report(struct log_limit_group *g)
{
    if (g->suppressed) {
        uint64_t secs = (g->last_ms - g->since_ms + 999) / 1000;
        char line[LOG_LIMIT_LINE + 80];
        snprintf(line, sizeof(line), "%llu more like this were not logged in %llu s: %s",
                 (unsigned long long)g->suppressed, (unsigned long long)(secs ? secs : 1), g->line);
        log_line(g->lvl, line);
    }
    g->used = false;
    g->suppressed = 0;
}

static bool log_limit_vlog(struct log_limit *l, uint64_t now_ms, enum log_level lvl,
                           const char *key, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static bool log_limit_vlog(struct log_limit *l, uint64_t now_ms, enum log_level lvl,
                           const char *key, const char *fmt, va_list ap)
{
    if (lvl < log_min)
        return false;
    struct log_limit_group *mine = &l->group[log_limit_group_of(key ? key : "")];

    pthread_mutex_lock(&l->lock);
    /* Counts of other groups whose interval is over go out now, not only when that group
     * logs again: while this limit sees traffic, no count waits for long. Clocks of
     * different threads may disagree by a little: "earlier" counts as "within". */
    for (unsigned i = 0; i < LOG_LIMIT_GROUPS; i++) {
        struct log_limit_group *g = &l->group[i];
        if (g->used && now_ms > g->since_ms && now_ms - g->since_ms >= l->interval_ms)
            log_limit_report(g);
    }
    /* Formatted only when written: under a flood nearly every call is only counted. */
    char line[2048];
    bool write = !mine->used && vsnprintf(line, sizeof(line), fmt, ap) >= 0;
    if (write) {
        /* the count repeats at most the start of a long line */
        size_t n = strnlen(line, sizeof(mine->line) - 1);
        memcpy(mine->line, line, n);
        mine->line[n] = '\0';
        mine->used = true;
        mine->lvl = lvl;
        mine->since_ms = now_ms;
        mine->last_ms = now_ms;
        /* Under the lock, so that the line's count can never come before the line. */
        log_line(lvl, line);
    } else if (mine->used) {
        mine->suppressed++;
        if (now_ms > mine->last_ms)
            mine->last_ms = now_ms;
    }
    pthread_mutex_unlock(&l->lock);
    return write;
}

bool log_limited_at(struct log_limit *l, uint64_t now_ms, enum log_level lvl, const char *key,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool written = log_limit_vlog(l, now_ms, lvl, key, fmt, ap);
    va_end(ap);
    return written;
}

bool log_limited(struct log_limit *l, enum log_level lvl, const char *key, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    va_list ap;
    va_start(ap, fmt);
    bool written = log_limit_vlog(l, now_ms, lvl, key, fmt, ap);
    va_end(ap);
    return written;
}

void log_limit_flush(struct log_limit *l)
{
    pthread_mutex_lock(&l->lock);
    for (unsigned i = 0; i < LOG_LIMIT_GROUPS; i++)
        if (l->group[i].used)
            log_limit_report(&l->group[i]);
    pthread_mutex_unlock(&l->lock);
}
