/*
 * cli/sendmail_args.h — sendmail 8's command line, parsed into a struct (pure: no I/O).
 *
 * argv[0]'s basename chooses the default mode as sendmail does (mailq, newaliases,
 * hoststat, purgestat, smtpd; anything else, e.g. sendmail or ringmail-sendmail, delivers;
 * a "ringmail-" prefix is ignored). Flags follow sendmail's getopt rules: clustered ("-ti"),
 * a value attached or in the next argument ("-fme", "-f me"), and the first argument that
 * is not a flag (or "--") ends them; the rest are recipients (each may hold a comma list).
 *
 * Ownership: every string in the struct points into argv (never copied) except the
 * warnings, which are malloc'd like the arrays; sendmail_args_free() releases them.
 * The struct is fully rewritten by sendmail_args_parse(), even when it fails (then it
 * holds what was parsed so far and must still be freed).
 */
#ifndef RINGMAIL_CLI_SENDMAIL_ARGS_H
#define RINGMAIL_CLI_SENDMAIL_ARGS_H

#include <stdbool.h>
#include <stddef.h>

enum sendmail_mode {
    SM_MODE_DELIVER,   /* -bm, the default: read a message from stdin */
    SM_MODE_SMTP,      /* -bs: SMTP on stdin/stdout */
    SM_MODE_PRINTQ,    /* -bp, -bP, mailq */
    SM_MODE_ALIASES,   /* -bi, -I, newaliases */
    SM_MODE_VERIFY,    /* -bv */
    SM_MODE_TEST,      /* -bt */
    SM_MODE_DAEMON,    /* -bd, smtpd */
    SM_MODE_DAEMON_FG, /* -bD */
    SM_MODE_QUEUE_RUN, /* -q... without -bd/-bD/-bp */
    SM_MODE_HOSTSTAT,  /* -bh, hoststat */
    SM_MODE_PURGESTAT, /* -bH, purgestat */
    SM_MODE_PICKUP,    /* --pickup FILE (ringmail's own: the maildrop pickup) */
    SM_MODE_VERSION    /* --version, -d0.1 (sendmail's version banner idiom), -d */
};

/* -N, as bits (the text is kept in dsn_notify too). */
enum {
    SM_NOTIFY_NEVER = 1 << 0,
    SM_NOTIFY_SUCCESS = 1 << 1,
    SM_NOTIFY_FAILURE = 1 << 2,
    SM_NOTIFY_DELAY = 1 << 3,
};

/* -qR / -qS / -qI, "!" negates (sendmail 8.12's -q!R...). */
struct sendmail_queue_filter {
    char kind;         /* 'R' recipient, 'S' sender, 'I' queue id */
    bool negate;       /* -q!R... */
    const char *value; /* the substring, never empty */
};

struct sendmail_args {
    enum sendmail_mode mode;
    const char *progname;             /* argv[0]'s basename, the prefix of every message */
    const char *config;               /* -C */
    const char *sender;               /* -f / -r, as given ("" or "<>" = the null sender) */
    const char *fullname;             /* -F */
    bool read_recipients;             /* -t */
    bool ignore_dots;                 /* -i, -oi, -O IgnoreDots */
    char error_mode;                  /* 'p' default, 'm', 'w', 'e', 'q' (-oeX, -eX, ErrorMode) */
    const char *dsn_notify;           /* -N, as given ("never" or "success,failure,delay") */
    unsigned dsn_notify_flags;        /* -N as SM_NOTIFY_* bits, 0 without -N */
    const char *dsn_ret;              /* -R full|hdrs, as given (case-insensitive) */
    const char *envid;                /* -V, xtext (RFC 3461), checked */
    const char *body_type;            /* -B 7BIT|8BITMIME, as given (case-insensitive) */
    const char *log_tag;              /* -L */
    const char *xlog;                 /* -X */
    bool verbose;                     /* -v, -ov */
    bool queue_run;                   /* any -q */
    const char *queue_interval;       /* -q30m's "30m" (with -bd: the daemon's queue interval) */
    unsigned long queue_interval_sec; /* 0: -q alone, -q0: run once */
    struct sendmail_queue_filter *queue_filters; /* -qR/-qS/-qI, all must match */
    size_t n_queue_filters;
    bool queue_foreground; /* -qf */
    /* -qQ[substr] with -bp: only quarantined messages, their reason containing substr
     * (case-insensitive; "" any); NULL without -qQ */
    const char *queue_quarantine;
    bool unquarantine;    /* -Q without a reason, with -qI/-qR/-qS: release those messages */
    const char **options; /* -O opt=val, -oXval, as given (without "-O"/"-o") */
    size_t n_options;
    const char **recipients; /* the arguments after the flags */
    size_t n_recipients;
    const char **warnings; /* "sendmail: warning: ..." lines (no newline) for stderr */
    size_t n_warnings;
    const char *pickup_file; /* --pickup FILE */
    bool json;               /* --json: mailq's JSON document instead of sendmail's text */
};

/* 0, or EX_USAGE with `err` set to the text sendmail prints (one line, no newline;
 * getopt's errors carry the program name as sendmail's do), or EX_OSERR when memory ran
 * out. Warnings never fail: they are collected in a->warnings.
 *
 * sendmail's rules kept here: a second -f/-r is refused ("More than one "from" person");
 * -t with recipients on the command line means those recipients are NOT sent to (the
 * command-line list is subtracted, see msgprep_settings.cmdline_rcpts); DELIVER (and VERIFY)
 * without recipients and without -t is "Recipient names must be specified"; -q with a
 * mode other than delivery, daemon or queue printing is "Can not use -q with -bX". */
int sendmail_args_parse(int argc, char **argv, struct sendmail_args *a, char *err, size_t errlen);
void sendmail_args_free(struct sendmail_args *a);

#endif
