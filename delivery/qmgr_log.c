#include "delivery/qmgr_log.h"

#include <stdio.h>
#include <string.h>

void qmgr_log_delay(time_t seconds, char *out, size_t outlen)
{
    if (seconds < 0)
        seconds = 0;
    long s = (long)seconds;
    if (s >= 86400)
        snprintf(out, outlen, "%ld+%02ld:%02ld:%02ld", s / 86400, s % 86400 / 3600, s % 3600 / 60,
                 s % 60);
    else
        snprintf(out, outlen, "%02ld:%02ld:%02ld", s / 3600, s % 3600 / 60, s % 60);
}

const char *qmgr_log_lifetime(uint32_t seconds)
{
    static _Thread_local char out[48];
    static const struct {
        uint32_t unit;
        const char *name;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    size_t u = 0;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && seconds % units[u].unit != 0)
        u++;
    uint32_t n = seconds / units[u].unit;
    snprintf(out, sizeof(out), "%u %s%s", n, units[u].name, n == 1 ? "" : "s");
    return out;
}

long qmgr_log_priority(const struct envelope *e)
{
    return (long)e->size + 30000L * (long)e->n_rcpts + 90000L * (long)e->attempts;
}

/* sendmail's texts for the statuses its log shows most (sm_errstring / the DSN table). */
static const struct {
    const char *status, *text;
} qmgr_log_texts[] = {
    {"5.1.1", "User unknown"},
    {"5.1.2", "Host unknown"},
    {"5.1.3", "Bad destination mailbox address syntax"},
    {"5.1.10", "Domain does not accept mail (null MX)"},
    {"5.2.1", "Mailbox disabled"},
    {"5.2.2", "Mailbox full"},
    {"5.3.4", "Message is too large"},
    {"5.3.5", "Local configuration error"},
    {"5.4.4", "Unable to route"},
    {"5.6.7", "The next hop does not support SMTPUTF8"},
    {"5.7.1", "Service unavailable"},
};

const char *qmgr_log_failure_text(const char *status, const char *reply)
{
    for (size_t i = 0; i < sizeof(qmgr_log_texts) / sizeof(qmgr_log_texts[0]); i++)
        if (strcmp(status, qmgr_log_texts[i].status) == 0)
            return qmgr_log_texts[i].text;
    return reply && *reply ? reply : "Service unavailable";
}

const char *qmgr_log_stat_text(enum qmgr_log_stat stat, const char *status, const char *text,
                               char *out, size_t outlen)
{
    /* a local mailer says nothing more than that: sendmail's line is then "stat=Sent" */
    if (stat == QMGR_LOG_SENT && (!text || !*text || strcmp(text, "Sent") == 0)) {
        snprintf(out, outlen, "Sent");
        return out;
    }
    const char *what = stat == QMGR_LOG_SENT       ? "Sent ("
                       : stat == QMGR_LOG_DEFERRED ? "Deferred: "
                                                   : "";
    const char *detail = stat == QMGR_LOG_FAILED ? qmgr_log_failure_text(status, text) : text;
    snprintf(out, outlen, "%s%s%s", what, detail ? detail : "", stat == QMGR_LOG_SENT ? ")" : "");
    return out;
}

const char *qmgr_log_format(const char *qid, const struct envelope *e, const char *to,
                            const char *ctladdr, const char *mailer, const char *relay,
                            enum qmgr_log_stat stat, const char *status, const char *text,
                            time_t attempt_start, time_t now, char *out, size_t outlen)
{
    char delay[32], xdelay[32], relay_field[400] = "", ctl_field[400] = "", stat_text[1200];
    qmgr_log_delay(now - e->created, delay, sizeof(delay));
    qmgr_log_delay(now - attempt_start, xdelay, sizeof(xdelay));
    if (relay && *relay)
        snprintf(relay_field, sizeof(relay_field), ", relay=%s", relay);
    if (ctladdr && *ctladdr)
        snprintf(ctl_field, sizeof(ctl_field), ", ctladdr=%s", ctladdr);
    qmgr_log_stat_text(stat, status, text, stat_text, sizeof(stat_text));
    snprintf(out, outlen, "%s: to=%s%s, delay=%s, xdelay=%s, mailer=%s, pri=%ld%s, dsn=%s, stat=%s",
             qid, to, ctl_field, delay, xdelay, mailer, qmgr_log_priority(e), relay_field, status,
             stat_text);
    return out;
}
