/*
 * delivery/qmgr_log.h — one log line per recipient outcome, in sendmail's words, so the
 * log analysers written for sendmail (pflogsumm's sendmail cousins, fail2ban, Logwatch's
 * sendmail service) read ringmail's delivery log unchanged:
 *
 *   <qid>: to=<a@b>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=30000,
 *       relay=mx.b. [192.0.2.1], dsn=2.0.0, stat=Sent (<the next hop's reply>)
 *   ... dsn=4.4.1, stat=Deferred: Connection refused by mx.b.
 *   ... dsn=5.1.1, stat=User unknown
 *   <qid>: to="|/usr/bin/procmail", ctladdr=<alice@host> (1000/1000), delay=..., mailer=prog, ...
 *
 * Pure formatting: the queue manager writes the line (and keeps it for WATCH).
 */
#ifndef RINGMAIL_DELIVERY_QMGR_LOG_H
#define RINGMAIL_DELIVERY_QMGR_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "queue/envelope.h"

enum qmgr_log_stat { QMGR_LOG_SENT, QMGR_LOG_DEFERRED, QMGR_LOG_FAILED };

/* sendmail's delay form: "00:00:05", "2+03:04:05" past a day. */
void qmgr_log_delay(time_t seconds, char *out, size_t outlen);
/* sendmail's words for a queue lifetime: "5 days", "4 hours", "30 minutes"; a static
 * buffer (one thread's worth: the caller copies it before the next call). */
const char *qmgr_log_lifetime(uint32_t seconds);
/* sendmail's priority: size + 30000 per recipient + 90000 per attempt made. */
long qmgr_log_priority(const struct envelope *e);
/* The stat= text of a permanent failure: sendmail's words for the enhanced status
 * ("5.1.1" → "User unknown"), else the reply itself. */
const char *qmgr_log_failure_text(const char *status, const char *reply);
/* The stat= value alone: "Sent (<text>)", "Deferred: <text>" or the failure's words
 * (qmgr_log_failure_text). The log line and the qf's last reason (sendmail's M line, which
 * mailq shows) both take it from here. Returns `out`. */
const char *qmgr_log_stat_text(enum qmgr_log_stat stat, const char *status, const char *text,
                               char *out, size_t outlen);
/* Formats one line (without a trailing newline); returns `out`. `to` is the whole to= value:
 * "<a@b>" for a recipient of the queue file, or a target it expanded to as sendmail writes
 * it ("\"|prog args\"", "/path", "\\user"), which comes with `ctladdr`, the controlling
 * address: "<alice@host> (1000/1000)" (NULL for none). */
const char *qmgr_log_format(const char *qid, const struct envelope *e, const char *to,
                            const char *ctladdr, const char *mailer, const char *relay,
                            enum qmgr_log_stat stat, const char *status, const char *text,
                            time_t attempt_start, time_t now, char *out, size_t outlen);

#endif
