/* sendmail's command line: every flag, every mode argv[0] chooses, every error text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sysexits.h>

#include "cli/sendmail_args.h"

#define MAX_ARGS 16

struct run {
    struct sendmail_args a;
    char err[256];
    int rc;
    char *argv[MAX_ARGS + 1];
};

/* Parses a NULL-terminated list; argv[0] is its first string. */
static struct run *parse_list(struct run *r, const char *const *list)
{
    int argc = 0;
    for (; argc < MAX_ARGS && list[argc] != NULL; argc++)
        r->argv[argc] = (char *)list[argc];
    r->argv[argc] = NULL;
    r->rc = sendmail_args_parse(argc, r->argv, &r->a, r->err, sizeof(r->err));
    return r;
}

#define parse(r, ...) parse_list((r), (const char *const[]){__VA_ARGS__})

static void expect_error(struct run *r, const char *text)
{
    assert_int_equal(r->rc, EX_USAGE);
    assert_string_equal(r->err, text);
    sendmail_args_free(&r->a);
}

static void expect_warning(struct run *r, const char *text)
{
    assert_int_equal(r->rc, 0);
    assert_int_equal(r->a.n_warnings, 1);
    assert_string_equal(r->a.warnings[0], text);
    sendmail_args_free(&r->a);
}

static void test_defaults(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "/usr/sbin/sendmail", "user@example.org", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.mode, SM_MODE_DELIVER);
    assert_string_equal(r.a.progname, "sendmail");
    assert_int_equal(r.a.error_mode, 'p');
    assert_false(r.a.read_recipients);
    assert_false(r.a.ignore_dots);
    assert_null(r.a.sender);
    assert_int_equal(r.a.n_recipients, 1);
    assert_string_equal(r.a.recipients[0], "user@example.org");
    assert_int_equal(r.a.n_warnings, 0);
    sendmail_args_free(&r.a);
}

static void test_argv0_modes(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum sendmail_mode mode;
    } cases[] = {{"/usr/bin/mailq", SM_MODE_PRINTQ},
                 {"newaliases", SM_MODE_ALIASES},
                 {"/usr/sbin/hoststat", SM_MODE_HOSTSTAT},
                 {"purgestat", SM_MODE_PURGESTAT},
                 {"smtpd", SM_MODE_DAEMON},
                 {"ringmail-mailq", SM_MODE_PRINTQ}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        parse(&r, cases[i].name, NULL);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.a.mode, cases[i].mode);
        sendmail_args_free(&r.a);
    }
    struct run r;
    parse(&r, "ringmail-sendmail", "-t", NULL);
    assert_int_equal(r.a.mode, SM_MODE_DELIVER);
    assert_string_equal(r.a.progname, "ringmail-sendmail");
    sendmail_args_free(&r.a);
}

static void test_b_modes(void **state)
{
    (void)state;
    static const struct {
        const char *flag;
        enum sendmail_mode mode;
    } cases[] = {{"-bs", SM_MODE_SMTP},     {"-bp", SM_MODE_PRINTQ},    {"-bi", SM_MODE_ALIASES},
                 {"-bt", SM_MODE_TEST},     {"-bd", SM_MODE_DAEMON},    {"-bD", SM_MODE_DAEMON_FG},
                 {"-bh", SM_MODE_HOSTSTAT}, {"-bH", SM_MODE_PURGESTAT}, {"-I", SM_MODE_ALIASES}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        parse(&r, "sendmail", cases[i].flag, NULL);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.a.mode, cases[i].mode);
        assert_int_equal(r.a.n_warnings, 0);
        sendmail_args_free(&r.a);
    }
    struct run r;
    parse(&r, "sendmail", "-bm", "a@b", NULL);
    assert_int_equal(r.a.mode, SM_MODE_DELIVER);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-b", "v", "a@b", NULL); /* the value in the next argument */
    assert_int_equal(r.a.mode, SM_MODE_VERIFY);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-bP", NULL);
    assert_int_equal(r.a.mode, SM_MODE_PRINTQ);
    expect_warning(&r, "sendmail: warning: option -bP: ringmail keeps no queue counts; the "
                       "queue is printed instead");
    parse(&r, "sendmail", "-ba", "a@b", NULL);
    assert_int_equal(r.a.mode, SM_MODE_DELIVER);
    expect_warning(&r, "sendmail: warning: option -ba: ARPANET mode is obsolete; delivering "
                       "as with -bm");
    expect_error(parse(&r, "sendmail", "-bZ", NULL), "Invalid operation mode Z");
    expect_error(parse(&r, "sendmail", "-b", NULL), "sendmail: option requires an argument -- b");
}

static void test_verify_needs_addresses(void **state)
{
    (void)state;
    struct run r;
    expect_error(parse(&r, "sendmail", "-bv", NULL), "Recipient names must be specified");
    parse(&r, "sendmail", "-bv", "root", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.mode, SM_MODE_VERIFY);
    sendmail_args_free(&r.a);
}

static void test_t_and_i(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-t", "-i", NULL);
    assert_int_equal(r.rc, 0);
    assert_true(r.a.read_recipients);
    assert_true(r.a.ignore_dots);
    assert_int_equal(r.a.n_recipients, 0);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-ti", "skip@example.org", NULL); /* clustered */
    assert_true(r.a.read_recipients && r.a.ignore_dots);
    assert_int_equal(r.a.n_recipients, 1);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-t", "-oi", NULL);
    assert_true(r.a.ignore_dots);
    assert_int_equal(r.a.n_options, 1);
    assert_string_equal(r.a.options[0], "i");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-t", "-O", "IgnoreDots=false", "-O", "ignoredots", NULL);
    assert_true(r.a.ignore_dots);
    assert_int_equal(r.a.n_options, 2);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-t", "-oi", "-O", "IgnoreDots=False", NULL);
    assert_false(r.a.ignore_dots);
    sendmail_args_free(&r.a);
}

static void test_no_recipients(void **state)
{
    (void)state;
    struct run r;
    expect_error(parse(&r, "sendmail", NULL), "Recipient names must be specified");
    expect_error(parse(&r, "sendmail", "-oi", "-f", "me", NULL),
                 "Recipient names must be specified");
}

static void test_error_modes(void **state)
{
    (void)state;
    static const char *const letters = "mepqw";
    for (const char *l = letters; *l != '\0'; l++) {
        char flag[] = {'-', 'o', 'e', *l, '\0'};
        struct run r;
        parse(&r, "sendmail", flag, "a@b", NULL);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.a.error_mode, *l);
        assert_int_equal(r.a.n_warnings, 0);
        sendmail_args_free(&r.a);
    }
    struct run r;
    parse(&r, "sendmail", "-oem", "-oe", "a@b", NULL); /* a bare -oe changes nothing */
    assert_int_equal(r.a.error_mode, 'm');
    assert_int_equal(r.a.n_warnings, 0);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-eq", "a@b", NULL);
    assert_int_equal(r.a.error_mode, 'q');
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-O", "ErrorMode=w", "a@b", NULL);
    assert_int_equal(r.a.error_mode, 'w');
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-oex", "a@b", NULL);
    assert_int_equal(r.a.error_mode, 'p');
    expect_warning(&r, "sendmail: warning: option -oex ignored (unknown error mode)");
}

static void test_sender(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-f", "me@example.org", "a@b", NULL);
    assert_string_equal(r.a.sender, "me@example.org");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-fme@example.org", "a@b", NULL);
    assert_string_equal(r.a.sender, "me@example.org");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-r", "<>", "a@b", NULL);
    assert_string_equal(r.a.sender, "<>");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-f", "", "a@b", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.a.sender, "");
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "-f", "a", "-r", "b", "x@y", NULL),
                 "More than one \"from\" person");
    expect_error(parse(&r, "sendmail", "-f", "", "-f", "b", "x@y", NULL),
                 "More than one \"from\" person");
    expect_error(parse(&r, "sendmail", "-f", NULL), "sendmail: option requires an argument -- f");
    /* getopt takes the next argument whatever it looks like */
    parse(&r, "sendmail", "-F", "-Root-", "-f", "-x", "a@b", NULL);
    assert_string_equal(r.a.fullname, "-Root-");
    assert_string_equal(r.a.sender, "-x");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-FCron Daemon", "a@b", NULL);
    assert_string_equal(r.a.fullname, "Cron Daemon");
    sendmail_args_free(&r.a);
}

static void test_dsn(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-N", "never", "-R", "HDRS", "-V", "id+2Bx", "a@b", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.a.dsn_notify, "never");
    assert_int_equal(r.a.dsn_notify_flags, SM_NOTIFY_NEVER);
    assert_string_equal(r.a.dsn_ret, "HDRS");
    assert_string_equal(r.a.envid, "id+2Bx");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-NSuccess,failure,DELAY", "-Rfull", "a@b", NULL);
    assert_int_equal(r.a.dsn_notify_flags, SM_NOTIFY_SUCCESS | SM_NOTIFY_FAILURE | SM_NOTIFY_DELAY);
    assert_string_equal(r.a.dsn_ret, "full");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-N", "delay", "a@b", NULL);
    assert_int_equal(r.a.dsn_notify_flags, SM_NOTIFY_DELAY);
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "-N", "never,success", "a@b", NULL), "Invalid -N argument");
    expect_error(parse(&r, "sendmail", "-N", "sometimes", "a@b", NULL), "Invalid -N argument");
    expect_error(parse(&r, "sendmail", "-N", "success,", "a@b", NULL), "Invalid -N argument");
    expect_error(parse(&r, "sendmail", "-N", "", "a@b", NULL), "Invalid -N argument");
    expect_error(parse(&r, "sendmail", "-R", "body", "a@b", NULL), "Invalid -R value");
    expect_error(parse(&r, "sendmail", "-R", "full", "-R", "hdrs", "a@b", NULL),
                 "Duplicate -R flag");
    expect_error(parse(&r, "sendmail", "-V", "a=b", "a@b", NULL), "Invalid syntax in -V flag");
    expect_error(parse(&r, "sendmail", "-V", "a+b", "a@b", NULL), "Invalid syntax in -V flag");
    expect_error(parse(&r, "sendmail", "-V", "a b", "a@b", NULL), "Invalid syntax in -V flag");
    expect_error(parse(&r, "sendmail", "-V", "", "a@b", NULL), "Invalid syntax in -V flag");
    char longid[120];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    expect_error(parse(&r, "sendmail", "-V", longid, "a@b", NULL), "Invalid syntax in -V flag");
}

static void test_body_type(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-B", "8bitmime", "a@b", NULL);
    assert_string_equal(r.a.body_type, "8bitmime");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-B7BIT", "a@b", NULL);
    assert_string_equal(r.a.body_type, "7BIT");
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "-B", "binarymime", "a@b", NULL),
                 "Illegal body type binarymime");
}

static void test_strings(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-C", "/etc/r.yaml", "-L", "cron", "-X", "/tmp/x.log", "-v", "a@b", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.a.config, "/etc/r.yaml");
    assert_string_equal(r.a.log_tag, "cron");
    assert_string_equal(r.a.xlog, "/tmp/x.log");
    assert_true(r.a.verbose);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-C/etc/r.yaml", "-ov", "a@b", NULL);
    assert_string_equal(r.a.config, "/etc/r.yaml");
    assert_true(r.a.verbose);
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "-C", "-t", NULL),
                 "sendmail: option requires an argument -- C");
}

static void test_queue(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-q", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.mode, SM_MODE_QUEUE_RUN);
    assert_true(r.a.queue_run);
    assert_null(r.a.queue_interval);
    assert_int_equal(r.a.queue_interval_sec, 0);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-bd", "-q30m", NULL);
    assert_int_equal(r.a.mode, SM_MODE_DAEMON);
    assert_string_equal(r.a.queue_interval, "30m");
    assert_int_equal(r.a.queue_interval_sec, 1800);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-q1h30m", "-bD", NULL);
    assert_int_equal(r.a.mode, SM_MODE_DAEMON_FG);
    assert_int_equal(r.a.queue_interval_sec, 5400);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-q", "15", NULL); /* sendmail's obsolete(): -q takes "15" */
    assert_int_equal(r.a.queue_interval_sec, 900);
    assert_int_equal(r.a.n_recipients, 0);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-q", "-v", NULL); /* ...but not a flag */
    assert_int_equal(r.a.queue_interval_sec, 0);
    assert_true(r.a.verbose);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-q2d1w10s", NULL);
    assert_int_equal(r.a.queue_interval_sec, 2 * 86400 + 604800 + 10);
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "-q5x", NULL), "Invalid time unit `x'");
    expect_error(parse(&r, "sendmail", "-qm", NULL), "Invalid -q value");
    expect_error(parse(&r, "sendmail", "-q!f", NULL), "Invalid -q value");
    expect_error(parse(&r, "sendmail", "-q99999999999m", NULL), "Invalid -q value");
}

static void test_queue_filters(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-qRexample.org", "-q!S", "bounce@", "-qI", "ABC", "-qf", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.mode, SM_MODE_QUEUE_RUN);
    assert_true(r.a.queue_foreground);
    assert_int_equal(r.a.n_queue_filters, 3);
    assert_int_equal(r.a.queue_filters[0].kind, 'R');
    assert_false(r.a.queue_filters[0].negate);
    assert_string_equal(r.a.queue_filters[0].value, "example.org");
    assert_int_equal(r.a.queue_filters[1].kind, 'S');
    assert_true(r.a.queue_filters[1].negate);
    assert_string_equal(r.a.queue_filters[1].value, "bounce@");
    assert_int_equal(r.a.queue_filters[2].kind, 'I');
    assert_string_equal(r.a.queue_filters[2].value, "ABC");
    assert_int_equal(r.a.n_recipients, 0);
    sendmail_args_free(&r.a);
    parse(&r, "mailq", "-qRfoo", NULL); /* mailq restricted by recipient */
    assert_int_equal(r.a.mode, SM_MODE_PRINTQ);
    assert_int_equal(r.a.n_queue_filters, 1);
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "-qR", NULL), "sendmail: option requires an argument -- R");
    expect_error(parse(&r, "sendmail", "-bs", "-q", NULL), "Can not use -q with -bs");
    expect_error(parse(&r, "sendmail", "-q", "-bv", "a@b", NULL), "Can not use -q with -bv");
    parse(&r, "sendmail", "-qGsome", NULL);
    expect_warning(&r, "sendmail: warning: option -qGsome ignored (ringmail has no queue "
                       "groups or persistent queue runners)");
}

/* mailq -qQ[substr] lists the quarantined messages; a queue run never takes them. */
static void test_qQ_list(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "mailq", "-qQ", NULL);
    assert_int_equal(r.a.mode, SM_MODE_PRINTQ);
    assert_non_null(r.a.queue_quarantine);
    assert_string_equal(r.a.queue_quarantine, "");
    assert_int_equal(r.a.n_warnings, 0);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-qQspam", "-bp", "-qRfoo", NULL);
    assert_int_equal(r.a.mode, SM_MODE_PRINTQ);
    assert_string_equal(r.a.queue_quarantine, "spam");
    assert_int_equal(r.a.n_queue_filters, 1);
    sendmail_args_free(&r.a);
    parse(&r, "mailq", NULL);
    assert_null(r.a.queue_quarantine);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-qQ", NULL);
    assert_int_equal(r.a.mode, SM_MODE_QUEUE_RUN);
    assert_null(r.a.queue_quarantine);
    expect_warning(&r, "sendmail: warning: option -qQ ignored (ringmail runs no quarantined "
                       "messages; release them first)");
    expect_error(parse(&r, "mailq", "-q!Qx", NULL), "Invalid -q value");
}

/* sendmail -Q -qI... (no reason): release the selected messages. */
static void test_Q_release(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-Q", "-qIabc", "-qRbob", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.mode, SM_MODE_QUEUE_RUN);
    assert_true(r.a.unquarantine);
    assert_int_equal(r.a.n_queue_filters, 2);
    assert_int_equal(r.a.n_warnings, 0);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-qSx", "-Q", NULL);
    assert_true(r.a.unquarantine);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-qIabc", NULL);
    assert_false(r.a.unquarantine);
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "-Q", "-q", NULL),
                 "sendmail: -Q releases only the messages -qI, -qR or -qS select");
    parse(&r, "sendmail", "-bp", "-Q", NULL);
    assert_false(r.a.unquarantine);
    expect_warning(&r, "sendmail: warning: option -Q ignored (it releases quarantined messages "
                       "in a queue run)");
}

static void test_legacy_flags(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value, *warning;
    } cases[] = {
        {"-om", NULL, "sendmail: warning: option -om ignored (ringmail has no such mode)"},
        {"-odb", NULL, "sendmail: warning: option -odb ignored (ringmail has no such mode)"},
        {"-odi", NULL, "sendmail: warning: option -odi ignored (ringmail has no such mode)"},
        {"-oQ/var/spool/mqueue", NULL,
         "sendmail: warning: option -oQ/var/spool/mqueue "
         "ignored (set it in ringmail's YAML configuration)"},
        {"-oA/etc/aliases", NULL,
         "sendmail: warning: option -oA/etc/aliases ignored (set it "
         "in ringmail's YAML configuration)"},
        {"-O", "DeliveryMode=i",
         "sendmail: warning: option -O DeliveryMode=i ignored (ringmail has no such mode)"},
        {"-O", "NoSuchThing=1",
         "sendmail: warning: option -O NoSuchThing=1 ignored (unknown option)"},
        {"-o!", NULL, "sendmail: warning: option -o! ignored (unknown option)"},
        {"-m", NULL, "sendmail: warning: option -m ignored (ringmail has no such mode)"},
        {"-n", NULL, "sendmail: warning: option -n ignored (ringmail has no such mode)"},
        {"-U", NULL, "sendmail: warning: option -U ignored (ringmail has no such mode)"},
        {"-s", NULL, "sendmail: warning: option -s ignored (ringmail has no such setting)"},
        {"-c", NULL, "sendmail: warning: option -c ignored (ringmail has no such mode)"},
        {"-G", NULL,
         "sendmail: warning: option -G ignored (relayed and new submissions are "
         "treated alike)"},
        {"-h", "5",
         "sendmail: warning: option -h5 ignored (set it in ringmail's YAML "
         "configuration)"},
        {"-Mrfoo", NULL, "sendmail: warning: option -Mrfoo ignored (ringmail has no macros)"},
        {"-psmtp:host", NULL,
         "sendmail: warning: option -psmtp:host ignored (ringmail has no "
         "such setting)"},
        {"-Ac", NULL, "sendmail: warning: option -Ac ignored (ringmail has one configuration)"},
        {"-Am", NULL, "sendmail: warning: option -Am ignored (ringmail has one configuration)"},
        {"-d8.99", NULL,
         "sendmail: warning: option -d8.99 ignored (ringmail has no debug "
         "categories; see its log)"},
        {"-D", "/tmp/dbg",
         "sendmail: warning: option -D/tmp/dbg ignored (ringmail has no "
         "debug output file; see its log)"},
        {"-Qreason", NULL,
         "sendmail: warning: option -Qreason ignored (quarantining by hand is not "
         "offered; ringmail-queue hold)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        if (cases[i].value != NULL)
            parse(&r, "sendmail", cases[i].flag, cases[i].value, "a@b", NULL);
        else
            parse(&r, "sendmail", cases[i].flag, "a@b", NULL);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.a.mode, SM_MODE_DELIVER);
        assert_int_equal(r.a.n_recipients, 1);
        expect_warning(&r, cases[i].warning);
    }
    struct run r;
    expect_error(parse(&r, "sendmail", "-Ax", "a@b", NULL), "Invalid -A argument");
    parse(&r, "sendmail", "-odb", "-oem", "-oi", "a@b", NULL);
    assert_int_equal(r.a.n_options, 3);
    assert_string_equal(r.a.options[0], "db");
    assert_string_equal(r.a.options[1], "em");
    sendmail_args_free(&r.a);
}

static void test_version(void **state)
{
    (void)state;
    struct run r;
    static const char *const ways[] = {"--version", "-d0.1", "-d0", "-d"};
    for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
        parse(&r, "sendmail", ways[i], NULL);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.a.mode, SM_MODE_VERSION);
        sendmail_args_free(&r.a);
    }
    parse(&r, "sendmail", "-d0.1", "-bt", NULL); /* the usual idiom: the banner wins */
    assert_int_equal(r.a.mode, SM_MODE_VERSION);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-d", "a@b", NULL); /* -d never takes the next argument */
    assert_int_equal(r.a.mode, SM_MODE_VERSION);
    sendmail_args_free(&r.a);
}

static void test_pickup(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "ringmail-sendmail", "--pickup", "/var/spool/maildrop/1.2.ab", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.mode, SM_MODE_PICKUP);
    assert_string_equal(r.a.pickup_file, "/var/spool/maildrop/1.2.ab");
    sendmail_args_free(&r.a);
    parse(&r, "ringmail-sendmail", "--pickup=/m/x", NULL);
    assert_int_equal(r.a.mode, SM_MODE_PICKUP);
    assert_string_equal(r.a.pickup_file, "/m/x");
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "--pickup", NULL),
                 "sendmail: option requires an argument -- pickup");
}

static void test_json(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "mailq", "--json", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.mode, SM_MODE_PRINTQ);
    assert_true(r.a.json);
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-bp", "--json", NULL);
    assert_true(r.a.json);
    sendmail_args_free(&r.a);
    expect_error(parse(&r, "sendmail", "--json", "a@b", NULL),
                 "sendmail: --json goes with mailq (-bp) only");
}

static void test_unknown_flags(void **state)
{
    (void)state;
    struct run r;
    expect_error(parse(&r, "sendmail", "-Z", "a@b", NULL), "sendmail: illegal option -- Z");
    expect_error(parse(&r, "/usr/bin/mailq", "-tZ", NULL), "mailq: illegal option -- Z");
    expect_error(parse(&r, "sendmail", "--help", NULL), "sendmail: illegal option -- help");
    expect_error(parse(&r, "sendmail", "-T", "a@b", NULL), "sendmail: illegal option -- T");
}

static void test_end_of_flags(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "sendmail", "-oi", "--", "-weird@example.org", "b@c", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.a.n_recipients, 2);
    assert_string_equal(r.a.recipients[0], "-weird@example.org");
    sendmail_args_free(&r.a);
    /* POSIX getopt as sendmail uses it: the first non-flag ends the flags */
    parse(&r, "sendmail", "a@b", "-t", NULL);
    assert_false(r.a.read_recipients);
    assert_int_equal(r.a.n_recipients, 2);
    assert_string_equal(r.a.recipients[1], "-t");
    sendmail_args_free(&r.a);
    parse(&r, "sendmail", "-", NULL); /* a lone "-" is an argument */
    assert_int_equal(r.a.n_recipients, 1);
    sendmail_args_free(&r.a);
}

static void test_extra_arguments_warned(void **state)
{
    (void)state;
    struct run r;
    parse(&r, "newaliases", "foo", NULL);
    expect_warning(&r, "newaliases: warning: arguments after the flags ignored in this mode "
                       "(first: foo)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_argv0_modes),
        cmocka_unit_test(test_b_modes),       cmocka_unit_test(test_verify_needs_addresses),
        cmocka_unit_test(test_t_and_i),       cmocka_unit_test(test_no_recipients),
        cmocka_unit_test(test_error_modes),   cmocka_unit_test(test_sender),
        cmocka_unit_test(test_dsn),           cmocka_unit_test(test_body_type),
        cmocka_unit_test(test_strings),       cmocka_unit_test(test_queue),
        cmocka_unit_test(test_queue_filters), cmocka_unit_test(test_legacy_flags),
        cmocka_unit_test(test_version),       cmocka_unit_test(test_pickup),
        cmocka_unit_test(test_json),          cmocka_unit_test(test_unknown_flags),
        cmocka_unit_test(test_end_of_flags),  cmocka_unit_test(test_extra_arguments_warned),
        cmocka_unit_test(test_qQ_list),       cmocka_unit_test(test_Q_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
