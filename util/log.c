#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool log_to_stderr = true;
static enum log_level log_min = LOG_LVL_INFO;
static const char *log_ident = "ringmaild";

void log_open(const char *ident, bool to_stderr)
{
    log_ident = ident;
    log_to_stderr = to_stderr;
    if (!to_stderr)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level min)
{
    log_min = min;
}

void log_close(void)
{
    if (!log_to_stderr)
        closelog();
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    static const char *const tag[] = {"debug: ", "", "warning: ", "error: "};
    char line[2048];

    if (lvl < log_min)
        return;
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n < 0)
        return;
    if (!log_to_stderr) {
        syslog(prio[lvl], "%s%s", tag[lvl], line);
        return;
    }
    /* Same shape as a syslog line so operators grep one format in both modes. */
    char out[2200];
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
    int len = snprintf(out, sizeof(out), "%s %s[%ld]: %s%s\n", stamp, log_ident, (long)getpid(),
                       tag[lvl], line);
    if (len > (int)sizeof(out) - 1) {
        len = (int)sizeof(out) - 1;
        out[len - 1] = '\n';
    }
    if (write(STDERR_FILENO, out, (size_t)len) < 0)
        return;
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
