/* sendmail 8's command line (see sendmail_args.h). Texts of errors are sendmail's own, so
 * scripts that match on them keep working; flags with no meaning in ringmail are accepted
 * with a warning rather than refused, because programs pass them blindly (cron, mailx). */
#include "cli/sendmail_args.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "smtp/smtp_addr.h"

#define WHY_MODE    "ringmail has no such mode"
#define WHY_SETTING "ringmail has no such setting"
#define WHY_YAML    "set it in ringmail's YAML configuration"

struct parser {
    struct sendmail_args *a;
    char *err;
    size_t errlen;
    int argc;
    char **argv;
    int index;      /* the argument being read */
    bool version;   /* -d0..., --version: wins over any -b */
    bool seen_from; /* -f/-r given (sender may be "") */
    bool seen_ret;  /* -R given */
};

/* Where a flag's value comes from when nothing is attached to it. */
enum value_from {
    VALUE_NONE,     /* a flag without value */
    VALUE_NEXT,     /* getopt: the next argument, whatever it is */
    VALUE_NEXT_ARG, /* sendmail's obsolete(): the next argument unless it is a flag */
    VALUE_ATTACHED, /* -d: never the next argument */
};

struct flag {
    char letter;
    enum value_from from;
    int (*apply)(struct parser *p, const struct flag *f, const char *value);
    const char *why; /* for flags accepted and ignored */
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (p->errlen > 0)
        vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    return EX_USAGE;
}

static int out_of_memory(struct parser *p)
{
    if (p->errlen > 0)
        snprintf(p->err, p->errlen, "%s: out of memory", p->a->progname);
    return EX_OSERR;
}

/* Appends one element to a malloc'd array of `size`-byte elements. */
static int array_push(void *arrayp, size_t *n, size_t size, const void *elem)
{
    char **array = arrayp;
    char *grown = realloc(*array, (*n + 1) * size);
    if (grown == NULL)
        return -1;
    memcpy(grown + *n * size, elem, size);
    *array = grown;
    (*n)++;
    return 0;
}

static int warn(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int warn(struct parser *p, const char *fmt, ...)
{
    char line[512];
    int off = snprintf(line, sizeof(line), "%s: warning: ", p->a->progname);
    va_list ap;
    va_start(ap, fmt);
    if (off > 0 && (size_t)off < sizeof(line))
        vsnprintf(line + off, sizeof(line) - (size_t)off, fmt, ap);
    va_end(ap);
    char *copy = strdup(line);
    if (copy == NULL || array_push(&p->a->warnings, &p->a->n_warnings, sizeof(copy), &copy)) {
        free(copy);
        return out_of_memory(p);
    }
    return 0;
}

static int warn_ignored(struct parser *p, const char *flag, const char *value, const char *why)
{
    return warn(p, "option %s%s ignored (%s)", flag, value, why);
}

static int flag_legacy(struct parser *p, const struct flag *f, const char *value)
{
    char flag[3] = {'-', f->letter, '\0'};
    return warn_ignored(p, flag, value != NULL ? value : "", f->why);
}

/* sendmail's atobool(): empty or anything not starting with f/F/n/N is true. */
static bool option_bool(const char *v)
{
    return strchr("fFnN", v[0]) == NULL || v[0] == '\0';
}

/* `text` is the flag's value as given, for the warning; `mode` the letter part of it. */
static int set_error_mode(struct parser *p, const char *flag, const char *text, const char *mode)
{
    /* sendmail's setoption('e') leaves the mode alone for "" (a bare -oe) */
    if (mode[0] == '\0')
        return 0;
    if (strchr("pmweq", mode[0]) == NULL || mode[1] != '\0')
        return warn_ignored(p, flag, text, "unknown error mode");
    p->a->error_mode = mode[0];
    return 0;
}

enum option_action { OPT_IGNORE_DOTS, OPT_ERROR_MODE, OPT_VERBOSE, OPT_IGNORED };

struct option {
    char letter; /* -oX, '\0' for long-only names */
    const char *name;
    enum option_action action;
    const char *why;
};

/* sendmail's options (readcf.c's OptionTab) that a command line may still carry. */
static const struct option options[] = {
    {'i', "IgnoreDots", OPT_IGNORE_DOTS, NULL},
    {'e', "ErrorMode", OPT_ERROR_MODE, NULL},
    {'v', "Verbose", OPT_VERBOSE, NULL},
    {'7', "SevenBitInput", OPT_IGNORED, WHY_SETTING},
    {'8', "EightBitMode", OPT_IGNORED, WHY_SETTING},
    {'A', "AliasFile", OPT_IGNORED, WHY_YAML},
    {'a', "AliasWait", OPT_IGNORED, WHY_SETTING},
    {'B', "BlankSub", OPT_IGNORED, WHY_SETTING},
    {'b', "MinFreeBlocks", OPT_IGNORED, WHY_SETTING},
    {'C', "CheckpointInterval", OPT_IGNORED, WHY_SETTING},
    {'c', "HoldExpensive", OPT_IGNORED, WHY_MODE},
    {'d', "DeliveryMode", OPT_IGNORED, WHY_MODE},
    {'E', "ErrorHeader", OPT_IGNORED, WHY_SETTING},
    {'F', "TempFileMode", OPT_IGNORED, WHY_SETTING},
    {'f', "SaveFromLine", OPT_IGNORED, WHY_SETTING},
    {'G', "MatchGECOS", OPT_IGNORED, WHY_SETTING},
    {'H', "HelpFile", OPT_IGNORED, WHY_SETTING},
    {'h', "MaxHopCount", OPT_IGNORED, WHY_YAML},
    {'I', "ResolverOptions", OPT_IGNORED, WHY_SETTING},
    {'J', "ForwardPath", OPT_IGNORED, WHY_SETTING},
    {'j', "SendMimeErrors", OPT_IGNORED, WHY_SETTING},
    {'K', "ConnectionCacheTimeout", OPT_IGNORED, WHY_SETTING},
    {'k', "ConnectionCacheSize", OPT_IGNORED, WHY_SETTING},
    {'L', "LogLevel", OPT_IGNORED, WHY_YAML},
    {'l', "UseErrorsTo", OPT_IGNORED, WHY_SETTING},
    {'m', "MeToo", OPT_IGNORED, WHY_MODE},
    {'n', "CheckAliases", OPT_IGNORED, WHY_SETTING},
    {'O', "DaemonPortOptions", OPT_IGNORED, WHY_YAML},
    {'o', "OldStyleHeaders", OPT_IGNORED, WHY_MODE},
    {'P', "PostmasterCopy", OPT_IGNORED, WHY_SETTING},
    {'p', "PrivacyOptions", OPT_IGNORED, WHY_SETTING},
    {'Q', "QueueDirectory", OPT_IGNORED, WHY_YAML},
    {'q', "QueueFactor", OPT_IGNORED, WHY_SETTING},
    {'R', "DontPruneRoutes", OPT_IGNORED, WHY_SETTING},
    {'r', "Timeout", OPT_IGNORED, WHY_YAML},
    {'S', "StatusFile", OPT_IGNORED, WHY_SETTING},
    {'s', "SuperSafe", OPT_IGNORED, WHY_MODE},
    {'T', "QueueTimeout", OPT_IGNORED, WHY_YAML},
    {'t', "TimeZoneSpec", OPT_IGNORED, WHY_SETTING},
    {'U', "UserDatabaseSpec", OPT_IGNORED, WHY_SETTING},
    {'u', "DefaultUser", OPT_IGNORED, WHY_SETTING},
    {'V', "FallbackMXhost", OPT_IGNORED, WHY_YAML},
    {'w', "TryNullMXList", OPT_IGNORED, WHY_SETTING},
    {'X', "RefuseLA", OPT_IGNORED, WHY_SETTING},
    {'x', "QueueLA", OPT_IGNORED, WHY_SETTING},
    {'Y', "ForkEachJob", OPT_IGNORED, WHY_MODE},
    {'y', "RecipientFactor", OPT_IGNORED, WHY_SETTING},
    {'Z', "RetryFactor", OPT_IGNORED, WHY_SETTING},
    {'z', "ClassFactor", OPT_IGNORED, WHY_SETTING},
    {'\0', "MaxMessageSize", OPT_IGNORED, WHY_YAML},
    {'\0', "MaxRecipientsPerMessage", OPT_IGNORED, WHY_YAML},
    {'\0', "QueueSortOrder", OPT_IGNORED, WHY_SETTING},
    {'\0', "DoubleBounceAddress", OPT_IGNORED, WHY_SETTING},
};

static const struct option *option_by_letter(char letter)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (options[i].letter == letter && letter != '\0')
            return &options[i];
    return NULL;
}

static const struct option *option_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (strlen(options[i].name) == len && strncasecmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

static int option_apply(struct parser *p, const struct option *o, const char *flag,
                        const char *text, const char *value)
{
    switch (o->action) {
    case OPT_IGNORE_DOTS:
        p->a->ignore_dots = option_bool(value);
        return 0;
    case OPT_ERROR_MODE:
        return set_error_mode(p, flag, text, value);
    case OPT_VERBOSE:
        p->a->verbose = option_bool(value);
        return 0;
    case OPT_IGNORED:
        break;
    }
    return warn_ignored(p, flag, text, o->why);
}

static int keep_option(struct parser *p, const char *value)
{
    if (array_push(&p->a->options, &p->a->n_options, sizeof(value), &value))
        return out_of_memory(p);
    return 0;
}

static int flag_o(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    if (keep_option(p, value))
        return EX_OSERR;
    if (value[0] == '\0')
        return 0;
    const struct option *o = option_by_letter(value[0]);
    if (o == NULL)
        return warn_ignored(p, "-o", value, "unknown option");
    return option_apply(p, o, "-o", value, value + 1);
}

static int flag_O(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    if (keep_option(p, value))
        return EX_OSERR;
    size_t name_len = strcspn(value, "=");
    const char *v = value[name_len] == '=' ? value + name_len + 1 : "";
    const struct option *o = option_by_name(value, name_len);
    if (o == NULL)
        return warn_ignored(p, "-O ", value, "unknown option");
    return option_apply(p, o, "-O ", value, v);
}

static int flag_e(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    return set_error_mode(p, "-e", value, value);
}

struct mode_letter {
    char letter;
    enum sendmail_mode mode;
    const char *why; /* accepted with this warning */
};

static const struct mode_letter modes[] = {
    {'m', SM_MODE_DELIVER, NULL},
    {'s', SM_MODE_SMTP, NULL},
    {'p', SM_MODE_PRINTQ, NULL},
    {'P', SM_MODE_PRINTQ, "ringmail keeps no queue counts; the queue is printed instead"},
    {'i', SM_MODE_ALIASES, NULL},
    {'v', SM_MODE_VERIFY, NULL},
    {'t', SM_MODE_TEST, NULL},
    {'d', SM_MODE_DAEMON, NULL},
    {'D', SM_MODE_DAEMON_FG, NULL},
    {'h', SM_MODE_HOSTSTAT, NULL},
    {'H', SM_MODE_PURGESTAT, NULL},
    {'a', SM_MODE_DELIVER, "ARPANET mode is obsolete; delivering as with -bm"},
};

static int flag_b(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (modes[i].letter != value[0])
            continue;
        p->a->mode = modes[i].mode;
        if (modes[i].why == NULL)
            return 0;
        return warn(p, "option -b%c: %s", value[0], modes[i].why);
    }
    return fail(p, "Invalid operation mode %c", value[0]);
}

static char mode_letter(enum sendmail_mode mode)
{
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (modes[i].mode == mode)
            return modes[i].letter;
    return '?';
}

static int flag_I(struct parser *p, const struct flag *f, const char *value)
{
    (void)f, (void)value;
    p->a->mode = SM_MODE_ALIASES;
    return 0;
}

static int flag_A(struct parser *p, const struct flag *f, const char *value)
{
    if ((value[0] != 'c' && value[0] != 'm') || value[1] != '\0')
        return fail(p, "Invalid -A argument");
    return flag_legacy(p, f, value);
}

static int flag_B(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    if (strcasecmp(value, "7bit") != 0 && strcasecmp(value, "8bitmime") != 0)
        return fail(p, "Illegal body type %s", value);
    p->a->body_type = value;
    return 0;
}

static int flag_C(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    p->a->config = value;
    return 0;
}

/* sendmail -d0.1 (category 0 prints the version banner) is how scripts ask for the
 * version; a bare -d is sendmail's -d0-99.1, which starts with the banner too. */
static int flag_d(struct parser *p, const struct flag *f, const char *value)
{
    if (value[0] == '\0' || (value[0] == '0' && strchr(".-,", value[1]) != NULL)) {
        p->version = true;
        return 0;
    }
    return flag_legacy(p, f, value);
}

static int flag_F(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    p->a->fullname = value;
    return 0;
}

static int flag_f(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    if (p->seen_from)
        return fail(p, "More than one \"from\" person");
    p->seen_from = true;
    p->a->sender = value;
    return 0;
}

static int flag_i(struct parser *p, const struct flag *f, const char *value)
{
    (void)f, (void)value;
    p->a->ignore_dots = true;
    return 0;
}

static int flag_L(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    p->a->log_tag = value;
    return 0;
}

static int flag_N(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    static const struct {
        const char *word;
        unsigned bit;
    } words[] = {{"never", SM_NOTIFY_NEVER},
                 {"success", SM_NOTIFY_SUCCESS},
                 {"failure", SM_NOTIFY_FAILURE},
                 {"delay", SM_NOTIFY_DELAY}};
    unsigned bits = 0;
    for (const char *s = value;; s++) {
        size_t len = strcspn(s, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
            if (strlen(words[i].word) == len && strncasecmp(words[i].word, s, len) == 0)
                bit = words[i].bit;
        if (bit == 0)
            return fail(p, "Invalid -N argument");
        bits |= bit;
        s += len;
        if (*s == '\0')
            break;
    }
    /* RFC 3461 4.1: NEVER stands alone (sendmail would pass the combination on, and the
     * server would refuse it later, after the message was read) */
    if ((bits & SM_NOTIFY_NEVER) && bits != SM_NOTIFY_NEVER)
        return fail(p, "Invalid -N argument");
    p->a->dsn_notify = value;
    p->a->dsn_notify_flags = bits;
    return 0;
}

/* -Q alone (sendmail's unquarantine) releases what -qI/-qR/-qS select; -Qreason would
 * quarantine by hand, which ringmail leaves to the access map (and ringmail-queue hold). */
static int flag_Q(struct parser *p, const struct flag *f, const char *value)
{
    if (value != NULL && value[0] != '\0')
        return flag_legacy(p, f, value);
    p->a->unquarantine = true;
    return 0;
}

static int flag_q(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    struct sendmail_args *a = p->a;
    a->queue_run = true;
    bool negate = value[0] == '!';
    const char *v = value + negate;
    if (v[0] == 'R' || v[0] == 'S' || v[0] == 'I') {
        struct sendmail_queue_filter filter = {v[0], negate, v + 1};
        if (filter.value[0] == '\0' && p->index + 1 < p->argc)
            filter.value = p->argv[++p->index];
        if (filter.value[0] == '\0')
            return fail(p, "%s: option requires an argument -- %c", a->progname, v[0]);
        if (array_push(&a->queue_filters, &a->n_queue_filters, sizeof(filter), &filter))
            return out_of_memory(p);
        return 0;
    }
    if (negate)
        return fail(p, "Invalid -q value");
    if (v[0] == 'f' && v[1] == '\0') {
        a->queue_foreground = true;
        return 0;
    }
    if (v[0] == 'Q') { /* -qQ[substr]: the quarantined messages (listed with -bp only) */
        a->queue_quarantine = v + 1;
        return 0;
    }
    if (strchr("GLp", v[0]) != NULL && v[0] != '\0')
        return warn_ignored(p, "-q", v, "ringmail has no queue groups or persistent queue runners");
    if (v[0] == '\0')
        return 0;
    /* sendmail's convtime(): numbers with units, summed; a bare number is minutes */
    unsigned long total = 0;
    for (const char *s = v; *s != '\0';) {
        if (*s < '0' || *s > '9')
            return fail(p, "Invalid -q value");
        unsigned long n = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (n > 100000000UL)
                return fail(p, "Invalid -q value");
            n = n * 10 + (unsigned long)(*s - '0');
        }
        unsigned long unit = 60;
        switch (*s) {
        case '\0':
            break;
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case 'w':
            unit = 604800;
            break;
        default:
            return fail(p, "Invalid time unit `%c'", *s);
        }
        if (*s != '\0')
            s++;
        total += n * unit;
    }
    a->queue_interval = v;
    a->queue_interval_sec = total;
    return 0;
}

static int flag_R(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    if (p->seen_ret)
        return fail(p, "Duplicate -R flag");
    p->seen_ret = true;
    if (strcasecmp(value, "full") != 0 && strcasecmp(value, "hdrs") != 0)
        return fail(p, "Invalid -R value");
    p->a->dsn_ret = value;
    return 0;
}

static int flag_t(struct parser *p, const struct flag *f, const char *value)
{
    (void)f, (void)value;
    p->a->read_recipients = true;
    return 0;
}

static int flag_V(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    size_t len = strlen(value);
    if (len == 0 || len > SMTP_ENVID_MAX || !smtp_xtext_valid(value, len))
        return fail(p, "Invalid syntax in -V flag");
    p->a->envid = value;
    return 0;
}

static int flag_v(struct parser *p, const struct flag *f, const char *value)
{
    (void)f, (void)value;
    p->a->verbose = true;
    return 0;
}

static int flag_X(struct parser *p, const struct flag *f, const char *value)
{
    (void)f;
    p->a->xlog = value;
    return 0;
}

/* sendmail 8's getopt string: "A:B:b:C:cD:d:e:F:f:Gh:IiL:M:mN:nO:o:p:Q:q:R:r:sTtUV:vX:" */
static const struct flag flags[] = {
    {'A', VALUE_NEXT, flag_A, "ringmail has one configuration"},
    {'B', VALUE_NEXT, flag_B, NULL},
    {'b', VALUE_NEXT, flag_b, NULL},
    {'C', VALUE_NEXT_ARG, flag_C, NULL},
    {'c', VALUE_NONE, flag_legacy, WHY_MODE},
    {'D', VALUE_NEXT, flag_legacy, "ringmail has no debug output file; see its log"},
    {'d', VALUE_ATTACHED, flag_d, "ringmail has no debug categories; see its log"},
    {'e', VALUE_NEXT, flag_e, NULL},
    {'F', VALUE_NEXT, flag_F, NULL},
    {'f', VALUE_NEXT, flag_f, NULL},
    {'G', VALUE_NONE, flag_legacy, "relayed and new submissions are treated alike"},
    {'h', VALUE_NEXT, flag_legacy, WHY_YAML},
    {'I', VALUE_NONE, flag_I, NULL},
    {'i', VALUE_NONE, flag_i, NULL},
    {'L', VALUE_NEXT, flag_L, NULL},
    {'M', VALUE_NEXT, flag_legacy, "ringmail has no macros"},
    {'m', VALUE_NONE, flag_legacy, WHY_MODE},
    {'N', VALUE_NEXT, flag_N, NULL},
    {'n', VALUE_NONE, flag_legacy, WHY_MODE},
    {'O', VALUE_NEXT, flag_O, NULL},
    {'o', VALUE_NEXT, flag_o, NULL},
    {'p', VALUE_NEXT, flag_legacy, WHY_SETTING},
    {'Q', VALUE_NEXT_ARG, flag_Q, "quarantining by hand is not offered; ringmail-queue hold"},
    {'q', VALUE_NEXT_ARG, flag_q, NULL},
    {'R', VALUE_NEXT, flag_R, NULL},
    {'r', VALUE_NEXT, flag_f, NULL},
    {'s', VALUE_NONE, flag_legacy, WHY_SETTING},
    {'t', VALUE_NONE, flag_t, NULL},
    {'U', VALUE_NONE, flag_legacy, WHY_MODE},
    {'V', VALUE_NEXT, flag_V, NULL},
    {'v', VALUE_NONE, flag_v, NULL},
    {'X', VALUE_NEXT, flag_X, NULL},
};

static const struct flag *flag_find(char letter)
{
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (flags[i].letter == letter)
            return &flags[i];
    return NULL;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static enum sendmail_mode mode_of_name(const char *name)
{
    static const struct {
        const char *name;
        enum sendmail_mode mode;
    } names[] = {{"mailq", SM_MODE_PRINTQ},
                 {"newaliases", SM_MODE_ALIASES},
                 {"hoststat", SM_MODE_HOSTSTAT},
                 {"purgestat", SM_MODE_PURGESTAT},
                 {"smtpd", SM_MODE_DAEMON}};
    if (strncmp(name, "ringmail-", 9) == 0)
        name += 9;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].mode;
    return SM_MODE_DELIVER;
}

/* ringmail's own long flags; anything else after "--" is refused like an unknown flag. */
static int long_flag(struct parser *p)
{
    const char *arg = p->argv[p->index];
    if (strcmp(arg, "--version") == 0) {
        p->version = true;
        return 0;
    }
    if (strcmp(arg, "--pickup") == 0) {
        if (p->index + 1 >= p->argc)
            return fail(p, "%s: option requires an argument -- pickup", p->a->progname);
        p->a->pickup_file = p->argv[++p->index];
        return 0;
    }
    if (strncmp(arg, "--pickup=", 9) == 0 && arg[9] != '\0') {
        p->a->pickup_file = arg + 9;
        return 0;
    }
    if (strcmp(arg, "--json") == 0) {
        p->a->json = true;
        return 0;
    }
    return fail(p, "%s: illegal option -- %s", p->a->progname, arg + 2);
}

/* One argument holding one or more clustered flags ("-t", "-ti", "-fuser"). */
static int cluster(struct parser *p)
{
    const char *arg = p->argv[p->index];
    for (size_t k = 1; arg[k] != '\0'; k++) {
        const struct flag *f = flag_find(arg[k]);
        if (f == NULL)
            return fail(p, "%s: illegal option -- %c", p->a->progname, arg[k]);
        if (f->from == VALUE_NONE) {
            int rc = f->apply(p, f, NULL);
            if (rc != 0)
                return rc;
            continue;
        }
        const char *value = arg + k + 1;
        const char *next = p->index + 1 < p->argc ? p->argv[p->index + 1] : NULL;
        if (value[0] == '\0' && next != NULL &&
            (f->from == VALUE_NEXT || (f->from == VALUE_NEXT_ARG && next[0] != '-'))) {
            value = next;
            p->index++;
        } else if (value[0] == '\0' && f->from == VALUE_NEXT) {
            return fail(p, "%s: option requires an argument -- %c", p->a->progname, f->letter);
        } else if (value[0] == '\0' && f->letter == 'C') {
            return fail(p, "%s: option requires an argument -- C", p->a->progname);
        }
        return f->apply(p, f, value);
    }
    return 0;
}

static int finish(struct parser *p)
{
    struct sendmail_args *a = p->a;
    if (p->version)
        a->mode = SM_MODE_VERSION;
    else if (a->pickup_file != NULL)
        a->mode = SM_MODE_PICKUP;
    if (a->queue_run && a->mode == SM_MODE_DELIVER)
        a->mode = SM_MODE_QUEUE_RUN;
    if (a->json && a->mode != SM_MODE_PRINTQ)
        return fail(p, "%s: --json goes with mailq (-bp) only", a->progname);
    if (a->unquarantine && a->mode == SM_MODE_QUEUE_RUN && a->n_queue_filters == 0)
        return fail(p, "%s: -Q releases only the messages -qI, -qR or -qS select", a->progname);
    if (a->unquarantine && a->mode != SM_MODE_QUEUE_RUN) {
        a->unquarantine = false;
        int r = warn_ignored(p, "-Q", "", "it releases quarantined messages in a queue run");
        if (r)
            return r;
    }
    if (a->queue_quarantine && a->mode != SM_MODE_PRINTQ) {
        /* a queue run never tries a quarantined message: ringmail-queue release first */
        int r = warn_ignored(p, "-qQ", a->queue_quarantine,
                             "ringmail runs no quarantined messages; release them first");
        a->queue_quarantine = NULL;
        if (r)
            return r;
    }
    if (a->queue_run && a->mode != SM_MODE_QUEUE_RUN && a->mode != SM_MODE_DAEMON &&
        a->mode != SM_MODE_DAEMON_FG && a->mode != SM_MODE_PRINTQ && a->mode != SM_MODE_VERSION)
        return fail(p, "Can not use -q with -b%c", mode_letter(a->mode));
    bool takes_addresses = a->mode == SM_MODE_DELIVER || a->mode == SM_MODE_VERIFY;
    if (takes_addresses && a->n_recipients == 0 && !a->read_recipients)
        return fail(p, "Recipient names must be specified");
    if (!takes_addresses && a->mode != SM_MODE_TEST && a->n_recipients > 0)
        return warn(p, "arguments after the flags ignored in this mode (first: %s)",
                    a->recipients[0]);
    return 0;
}

int sendmail_args_parse(int argc, char **argv, struct sendmail_args *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->error_mode = 'p';
    a->progname = argc > 0 && argv[0] != NULL ? base_name(argv[0]) : "sendmail";
    a->mode = mode_of_name(a->progname);
    struct parser p = {.a = a, .err = err, .errlen = errlen, .argc = argc, .argv = argv};
    if (errlen > 0)
        err[0] = '\0';

    for (p.index = 1; p.index < argc; p.index++) {
        const char *arg = argv[p.index];
        if (arg[0] != '-' || arg[1] == '\0')
            break;
        if (strcmp(arg, "--") == 0) {
            p.index++;
            break;
        }
        int rc = arg[1] == '-' ? long_flag(&p) : cluster(&p);
        if (rc != 0)
            return rc;
    }
    int i = p.index;
    if (i < argc) {
        a->recipients = malloc((size_t)(argc - i) * sizeof(*a->recipients));
        if (a->recipients == NULL)
            return out_of_memory(&p);
        for (; i < argc; i++)
            a->recipients[a->n_recipients++] = argv[i];
    }
    return finish(&p);
}

void sendmail_args_free(struct sendmail_args *a)
{
    for (size_t i = 0; i < a->n_warnings; i++)
        free((char *)a->warnings[i]);
    free(a->warnings);
    free(a->options);
    free(a->recipients);
    free(a->queue_filters);
    a->warnings = NULL;
    a->options = NULL;
    a->recipients = NULL;
    a->queue_filters = NULL;
    a->n_warnings = a->n_options = a->n_recipients = a->n_queue_filters = 0;
}
