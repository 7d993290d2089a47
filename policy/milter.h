/*
 * policy/milter.h — sendmail's milter protocol (version 6, as libmilter speaks it), the
 * MTA's side, for one filter and one SMTP session. Pure: bytes in, bytes out, no socket,
 * no clock (docs/milter.md). The session glue owns the filter's connection and timers.
 *
 * (The settings below are shared with the configuration; the dialogue follows.)
 */
#ifndef RINGMAIL_POLICY_MILTER_H
#define RINGMAIL_POLICY_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sendmail's F= flags: what a session does when the filter cannot be used (not listening,
 * timed out, broke the protocol). */
enum milter_on_fail {
    MILTER_FAIL_CONTINUE, /* no flag: go on as if the filter were not there */
    MILTER_FAIL_TEMPFAIL, /* F=T: 451 4.3.2 (connection or message, as sendmail) */
    MILTER_FAIL_REJECT,   /* F=R: 550 5.7.1 */
};

/* sendmail's macro lists per step (confMILTER_MACROS_*), each a list of names as sendmail
 * writes them: "j", "_", "{daemon_name}". */
enum milter_macro_step {
    MILTER_MACROS_CONNECT,
    MILTER_MACROS_HELO,
    MILTER_MACROS_ENVFROM,
    MILTER_MACROS_ENVRCPT,
    MILTER_MACROS_DATA,
    MILTER_MACROS_EOH,
    MILTER_MACROS_EOM,
    MILTER_MACROS_N
};

struct milter_macro_list {
    const char *const *names;
    size_t n;
};

/* One filter: INPUT_MAIL_FILTER(`name', `S=...') with its F= and T= equates. */
struct milter_filter {
    const char *name;
    const char *socket; /* "unix:/path", "local:/path", "inet:port@host", "inet6:port@host" */
    enum milter_on_fail on_fail;
    /* T=C:S:R:E in milliseconds (sendmail's defaults 5m, 10s, 10s, 5m); 0 = no timeout */
    uint32_t timeout_connect, timeout_send, timeout_read, timeout_eom;
};

struct milter_settings {
    const struct milter_filter *filters; /* InputMailFilters, in the order they run */
    size_t n_filters;
    struct milter_macro_list macros[MILTER_MACROS_N];
};

#endif
