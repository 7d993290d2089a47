/*
 * core/config.c — config_load(), config_free().
 *
 * A file goes through three steps: the libyaml pass (config_yaml.c) checks its shape and
 * records where each value stands; libcyaml (config_cyaml.c) loads it as strings; then the
 * key table (config_keys.c) turns each string, or the key's default, into struct config,
 * and every refusal names FILE:LINE:COLUMN and the key. The built-in default is the same
 * walk over an empty document.
 */
#include "core/config.h"
#include "core/config_int.h"
#include "delivery/route.h"
#include "policy/clientlimit.h"
#include "queue/mailstats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/fileset.h"
#include "util/log.h"
#include "util/netaddr.h"

#define CONFIG_BUILTIN       "(built-in default)"
#define CONFIG_HOSTS         "/etc/hosts"
#define CONFIG_MAX_FILE      (4u << 20) /* a configuration is a page or two; this is a wrong file */
#define CONFIG_PATH_MAX      256
#define CONFIG_DEFAULT_WORDS 8 /* items in a list key's default (config_keys.c) */

struct config_ctx {
    const char *file;
    struct fileset *files; /* how files are read (util/fileset.h) */
    const char *base;      /* relative paths are relative to this directory */
    const struct config_doc *doc;
    char *err;
    size_t errlen;
};

/* The position of `path` or, for a value left at its default, of the nearest parent given
 * ("listen[1].name" not written: point at listen[1]). */
static const struct config_pos *config_ctx_pos(const struct config_ctx *x, const char *path)
{
    char buf[CONFIG_PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (;;) {
        const struct config_pos *p = config_doc_find(x->doc, buf);
        if (p)
            return p;
        char *dot = strrchr(buf, '.'), *bracket = strrchr(buf, '[');
        char *cut = !dot ? bracket : !bracket ? dot : dot > bracket ? dot : bracket;
        if (!cut)
            return NULL;
        *cut = '\0';
    }
}

static int config_fail(const struct config_ctx *x, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int config_fail(const struct config_ctx *x, const char *path, const char *fmt, ...)
{
    const struct config_pos *p = config_ctx_pos(x, path);
    int n =
        p ? snprintf(x->err, x->errlen, "%s:%u:%u: key '%s': ", x->file, p->line, p->column, path)
          : snprintf(x->err, x->errlen, "%s: key '%s': ", x->file, path);
    if (n >= 0 && (size_t)n < x->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int config_oom(const struct config_ctx *x)
{
    snprintf(x->err, x->errlen, "%s: out of memory", x->file);
    return -1;
}

static int config_bad(const struct config_ctx *x, const struct config_key *k, const char *path,
                      const char *text, const char *why)
{
    char expect[512];
    config_key_expect(k, true, expect, sizeof(expect));
    return config_fail(x, path, "expected %s, got '%s'%s%s", expect, text, why ? ": " : "",
                       why ? why : "");
}

static unsigned config_cpus(const struct config_key *k)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < (long)k->min ? (unsigned)k->min : n > (long)k->max ? (unsigned)k->max : (unsigned)n;
}

static int config_store_text(const struct config_ctx *x, void *at, char *copy)
{
    if (!copy)
        return config_oom(x);
    memcpy(at, &copy, sizeof(copy));
    return 0;
}

static int config_store(const struct config_ctx *x, const struct config_key *k, const char *text,
                        void *at, const char *path);

/* A key kept for later whose type is not text: checked into a scratch value, kept as
 * written. */
static int config_store_kept(const struct config_ctx *x, const struct config_key *k,
                             const char *text, void *at, const char *path)
{
    struct config_key plain = *k;
    union {
        uint64_t n;
        bool b;
        int family;
    } scratch;
    plain.flags &= ~(unsigned)CONFIG_F_KEEP;
    plain.width = sizeof(scratch.n);
    if (config_store(x, &plain, text, &scratch, path) < 0)
        return -1;
    return config_store_text(x, at, strdup(text));
}

/* One scalar (a key's value or one item of a list) into `at`. */
static int config_store(const struct config_ctx *x, const struct config_key *k, const char *text,
                        void *at, const char *path)
{
    if ((k->flags & CONFIG_F_KEEP) && !config_key_is_text(&(struct config_key){.type = k->type}))
        return config_store_kept(x, k, text, at, path);
    const char *why = NULL;
    uint64_t v;
    int family;
    switch (k->type) {
    case CONFIG_STRING:
        return *text ? config_store_text(x, at, strdup(text)) : config_bad(x, k, path, text, NULL);
    case CONFIG_DOMAIN:
        return config_domain_valid(text) ? config_store_text(x, at, strdup(text))
                                         : config_bad(x, k, path, text, NULL);
    case CONFIG_ADDRESS:
        return netaddr_is_ip(text) ? config_store_text(x, at, strdup(text))
                                   : config_bad(x, k, path, text, NULL);
    case CONFIG_PATH:
        return *text ? config_store_text(x, at, config_path_join(x->base, text))
                     : config_bad(x, k, path, text, NULL);
    case CONFIG_TLS_VERSION:
        return strcmp(text, "TLSv1.2") == 0 || strcmp(text, "TLSv1.3") == 0
                   ? config_store_text(x, at, strdup(text))
                   : config_bad(x, k, path, text, NULL);
    case CONFIG_BOOL: {
        bool b = strcmp(text, "true") == 0;
        if (!b && strcmp(text, "false") != 0)
            return config_bad(x, k, path, text, NULL);
        memcpy(at, &b, sizeof(b));
        return 0;
    }
    case CONFIG_FAMILY:
        family = strcmp(text, "inet") == 0 ? AF_INET : strcmp(text, "inet6") == 0 ? AF_INET6 : 0;
        if (!family)
            return config_bad(x, k, path, text, NULL);
        memcpy(at, &family, sizeof(family));
        return 0;
    case CONFIG_NETWORK:
        return netaddr_prefix_parse(text, at, &why) == 0 ? 0 : config_bad(x, k, path, text, why);
    case CONFIG_WORKERS:
        if (strcmp(text, "auto") == 0) {
            config_uint_put(at, k->width, config_cpus(k));
            return 0;
        }
        if (config_parse_uint(text, &v) < 0 || v < k->min || v > k->max)
            return config_bad(x, k, path, text, NULL);
        config_uint_put(at, k->width, v);
        return 0;
    case CONFIG_UINT:
    case CONFIG_SIZE:
    case CONFIG_DURATION: {
        int (*parse)(const char *, uint64_t *) = k->type == CONFIG_SIZE ? config_parse_size
                                                 : k->type == CONFIG_DURATION
                                                     ? config_parse_duration
                                                     : config_parse_uint;
        if (parse(text, &v) < 0 ||
            (!(v == 0 && (k->flags & CONFIG_F_ZERO_OFF)) && (v < k->min || v > k->max)))
            return config_bad(x, k, path, text, NULL);
        config_uint_put(at, k->width, v);
        return 0;
    }
    case CONFIG_SECTION:
    case CONFIG_MAPS:
        break;
    }
    return config_fail(x, path, "internal error: not a scalar");
}

/* A CONFIG_F_OR_ONE key's values, which libcyaml skips: the libyaml pass kept them. */
static size_t config_doc_items(const struct config_ctx *x, const char *path, char **out, size_t max)
{
    const struct config_pos *p = config_doc_find(x->doc, path);
    if (p && p->text) {
        out[0] = p->text;
        return 1;
    }
    size_t n = 0;
    for (; n < max; n++) {
        char item[CONFIG_PATH_MAX + 24];
        snprintf(item, sizeof(item), "%s[%zu]", path, n);
        if (!(p = config_doc_find(x->doc, item)) || !p->text)
            break;
        out[n] = p->text;
    }
    return n;
}

/* A list key: the items given, or the default's words. */
static int config_fill_list(const struct config_ctx *x, const struct config_key *k,
                            const struct config_raw *given, void *dst, const char *path)
{
    char *words = NULL, *dflt[CONFIG_DEFAULT_WORDS], *one[CONFIG_DEFAULT_WORDS];
    char *const *texts = dflt;
    size_t n = 0;
    if (k->flags & CONFIG_F_OR_ONE) {
        texts = one;
        n = config_doc_items(x, path, one, CONFIG_DEFAULT_WORDS);
        char item[CONFIG_PATH_MAX + 24];
        snprintf(item, sizeof(item), "%s[%zu]", path, n);
        if (config_doc_find(x->doc, item))
            return config_fail(x, item, "at most %d values", CONFIG_DEFAULT_WORDS);
    } else if (given) {
        texts = given->items;
        n = given->n_items;
    } else if (!k->dflt) {
        return 0; /* computed once the rest is known (config_computed) */
    } else {
        if (!(words = strdup(k->dflt)))
            return config_oom(x);
        for (char *save = NULL, *w = strtok_r(words, " ", &save); w && n < CONFIG_DEFAULT_WORDS;
             w = strtok_r(NULL, " ", &save))
            dflt[n++] = w;
    }
    size_t size = k->type == CONFIG_NETWORK ? sizeof(struct netaddr_prefix) : sizeof(char *);
    char *items = n ? calloc(n, size) : NULL;
    int rc = n && !items ? config_oom(x) : 0;
    /* Stored before filling, so that config_free() releases what a failure leaves. */
    memcpy((char *)dst + k->offset, &items, sizeof(items));
    *(size_t *)(void *)((char *)dst + k->count) = items ? n : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char item[CONFIG_PATH_MAX + 24]; /* path, "[", an index, "]" */
        snprintf(item, sizeof(item), "%s[%zu]", path, i);
        rc = config_store(x, k, texts[i], items + i * size, item);
    }
    free(words);
    return rc;
}

static int config_fill(const struct config_ctx *x, const struct config_key *keys, size_t n,
                       const struct config_raw *raw, void *dst, const char *prefix);

static int config_listener_addr(const struct config_listener *l, unsigned char bin[16])
{
    memset(bin, 0, 16);
    return inet_pton(AF_INET, l->address, bin) == 1    ? AF_INET
           : inet_pton(AF_INET6, l->address, bin) == 1 ? AF_INET6
                                                       : 0;
}

/* Family against address, and no two listeners with one name or one address and port
 * (sendmail refuses both too: the name is how logs and the daemon tell them apart). */
static int config_check_listener(const struct config_ctx *x, struct config *c, size_t j)
{
    struct config_listener *l = &c->listen[j];
    unsigned char a[16], b[16];
    char path[CONFIG_PATH_MAX];
    int family = config_listener_addr(l, a);
    if (l->family && l->family != family) {
        snprintf(path, sizeof(path), "listen[%zu].family", j);
        return config_fail(x, path, "%s does not match the address %s",
                           l->family == AF_INET ? "inet" : "inet6", l->address);
    }
    l->family = family;
    /* M=a kept in `modifiers` but not said with auth_required would be an open submission
     * port: refuse it, never run it open. And a port that requires AUTH needs something to
     * authenticate with. */
    if (l->modifiers && strchr(l->modifiers, 'a') && !l->auth_required) {
        snprintf(path, sizeof(path), "listen[%zu].modifiers", j);
        return config_fail(x, path,
                           "'%s': 'a' (SMTP AUTH required) is said with auth_required: true; "
                           "without it this listener would accept mail without authentication",
                           l->modifiers);
    }
    /* Trusting every address would let any client name itself: the list is required. */
    if (l->proxy_protocol != (l->n_trusted_proxies > 0)) {
        snprintf(path, sizeof(path), "listen[%zu].%s", j,
                 l->proxy_protocol ? "proxy_protocol" : "trusted_proxies");
        return config_fail(x, path, "%s",
                           l->proxy_protocol
                               ? "true needs trusted_proxies: the load balancers' addresses"
                               : "has no effect without proxy_protocol: true");
    }
    if (l->auth_required && (!l->auth || c->auth.mechanisms.n == 0)) {
        snprintf(path, sizeof(path), "listen[%zu].auth_required", j);
        return config_fail(x, path,
                           "AUTH is required here but not offered (auth.mechanisms is empty or "
                           "this listener has auth: false): no client could send mail");
    }
    for (size_t i = 0; i < j; i++) {
        const struct config_listener *o = &c->listen[i];
        if (strcmp(o->name, l->name) == 0) {
            snprintf(path, sizeof(path), "listen[%zu].name", j);
            return config_fail(x, path, "'%s' is already the name of listen[%zu]; names are unique",
                               l->name, i);
        }
        if (o->port == l->port && config_listener_addr(o, b) == family && !memcmp(a, b, 16)) {
            snprintf(path, sizeof(path), "listen[%zu].port", j);
            return config_fail(x, path, "%s port %u is already listen[%zu] ('%s')", l->address,
                               (unsigned)l->port, i, o->name);
        }
    }
    return 0;
}

/* The items given, or (CONFIG_F_ONE_ITEM: listen) one made of the sub-keys' defaults. */
static int config_fill_maps(const struct config_ctx *x, const struct config_key *k,
                            const struct config_raw *given, void *dst, const char *path)
{
    bool one = k->flags & CONFIG_F_ONE_ITEM;
    size_t n = given ? given->n_maps : one ? 1 : 0;
    if (n == 0 && one)
        return config_fail(x, path, "expected at least one listener");
    char *items = n ? calloc(n, k->width) : NULL;
    if (n && !items)
        return config_oom(x);
    /* Stored before filling, so that config_free() releases what a failure leaves. */
    memcpy((char *)dst + k->offset, &items, sizeof(items));
    *(size_t *)(void *)((char *)dst + k->count) = n;
    for (size_t j = 0; j < n; j++) {
        char item[CONFIG_PATH_MAX + 24]; /* path, "[", an index, "]" */
        snprintf(item, sizeof(item), "%s[%zu]", path, j);
        if (config_fill(x, k->sub, k->n_sub, given ? &given->maps[j * k->n_sub] : NULL,
                        items + j * k->width, item) < 0)
            return -1;
    }
    return 0;
}

static int config_fill(const struct config_ctx *x, const struct config_key *keys, size_t n,
                       const struct config_raw *raw, void *dst, const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        char path[CONFIG_PATH_MAX];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k->name);
        const struct config_raw *r = raw && config_doc_find(x->doc, path) ? &raw[i] : NULL;
        int rc = 0;
        if (k->type == CONFIG_SECTION)
            rc = config_fill(x, k->sub, k->n_sub, r ? r->map : NULL, dst, path);
        else if (k->type == CONFIG_MAPS)
            rc = config_fill_maps(x, k, r, dst, path);
        else if (k->flags & CONFIG_F_LIST)
            rc = config_fill_list(x, k, r, dst, path);
        else if (r || k->dflt)
            rc = config_store(x, k, r ? r->text : k->dflt, (char *)dst + k->offset, path);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* gethostname(), qualified from /etc/hosts as sendmail does without DNS: a mail server's
 * start-up must not wait on a resolver. */
static int config_hostname(const struct config_ctx *x, struct config *c)
{
    char name[256] = "localhost";
    if (gethostname(name, sizeof(name)) != 0)
        snprintf(name, sizeof(name), "localhost");
    name[sizeof(name) - 1] = '\0';
    char *fqdn = strchr(name, '.') ? NULL : config_hosts_fqdn(CONFIG_HOSTS, name);
    if (!(c->hostname = fqdn ? fqdn : strdup(name)))
        return config_oom(x);
    if (!config_domain_valid(c->hostname))
        return config_fail(x, "hostname",
                           "this system's name '%s' is not a domain name like mail.example.com; "
                           "set hostname",
                           c->hostname);
    return 0;
}

/* `name` in the directory that holds `path` (an absolute path). */
static int config_beside(const struct config_ctx *x, const char *path, const char *name, char **out)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash && slash != path ? (size_t)(slash - path) : 0;
    size_t len = dir + 1 + strlen(name) + 1;
    if (!(*out = malloc(len)))
        return config_oom(x);
    snprintf(*out, len, "%.*s/%s", (int)dir, path, name);
    return 0;
}

/* `name` in the directory `dir`: spool recovery lists only its own file names, so a file
 * of another kind may live there. */
static int config_inside(const struct config_ctx *x, const char *dir, const char *name, char **out)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    if (!(*out = malloc(len)))
        return config_oom(x);
    snprintf(*out, len, "%s/%s", dir, name);
    return 0;
}

/* The defaults that depend on other values: hostname, certificate keys, pid_file, the
 * submission paths, local_domains. */
/* ringmaild's --queue-interval (sendmail's -q30m beside -bd); 0 = the file's. */
static uint32_t config_queue_interval_ms;

int config_override_queue_interval(const char *text)
{
    uint64_t ms;
    if (config_parse_duration(text, &ms) < 0 || ms < 1000 || ms > 30 * 86400000ull)
        return -1;
    config_queue_interval_ms = (uint32_t)ms;
    return 0;
}

/* FEATURE(local_procmail) and FEATURE(smrsh) stand for settings of their own, as their m4
 * does: procmail becomes the local mailer unless LOCAL_MAILER_PATH names another, and smrsh
 * allows the programs in Debian's /etc/mail/smrsh unless smrsh_dir says otherwise. */
static int config_local_computed(const struct config_ctx *x, struct config_local *l)
{
    bool procmail = l->local_procmail && strcmp(l->local_procmail, "false") != 0;
    if (procmail && !l->local_path &&
        !(l->local_path = strdup(strcmp(l->local_procmail, "true") == 0 ? "/usr/bin/procmail"
                                                                        : l->local_procmail)))
        return config_oom(x);
    if (procmail && !l->local_args && !(l->local_args = strdup("procmail -Y -a $h -d $u")))
        return config_oom(x);
    if (l->local_path && !l->local_args) {
        const char *base = strrchr(l->local_path, '/');
        if (asprintf(&l->local_args, "%s -d $u", base ? base + 1 : l->local_path) < 0) {
            l->local_args = NULL;
            return config_oom(x);
        }
    }
    bool smrsh = l->smrsh && strcmp(l->smrsh, "false") != 0;
    if (smrsh && !l->smrsh_dir && !(l->smrsh_dir = strdup("/etc/mail/smrsh")))
        return config_oom(x);
    if (!smrsh && l->smrsh_dir) {
        free(l->smrsh_dir);
        l->smrsh_dir = NULL;
    }
    if (!l->mailbox || !l->mailbox[0])
        return config_fail(x, "mailers.mailbox",
                           "expected a path: \"/var/mail/$u\" or \"Maildir/\"");
    return 0;
}

static int config_computed(const struct config_ctx *x, struct config *c)
{
    if (config_queue_interval_ms)
        c->queue.interval = config_queue_interval_ms;
    if (!c->hostname && config_hostname(x, c) < 0)
        return -1;
    for (size_t i = 0; i < c->tls.n_certificates; i++) {
        struct config_cert *p = &c->tls.certificates[i];
        char path[CONFIG_PATH_MAX];
        snprintf(path, sizeof(path), "tls.certificates[%zu].cert", i);
        if (!p->cert)
            return config_fail(x, path, "expected the certificate file of this pair");
        /* As Postfix's smtpd_tls_key_file = $smtpd_tls_cert_file: one PEM with both. */
        if (!p->key && !(p->key = strdup(p->cert)))
            return config_oom(x);
    }
    if (c->tls.client_cert && !c->tls.client_key &&
        !(c->tls.client_key = strdup(c->tls.client_cert)))
        return config_oom(x);
    /* Beside the spool, as the demo certificates are: one directory holds an instance; the
     * sockets beside the pid file, as sendmail's and Postfix's run-time files. */
    if ((!c->pid_file && config_beside(x, c->spool, "ringmaild.pid", &c->pid_file) < 0) ||
        (!c->submission_socket &&
         config_beside(x, c->pid_file, "ringmail.sock", &c->submission_socket) < 0) ||
        (!c->control_socket &&
         config_beside(x, c->pid_file, "ringmail.ctl", &c->control_socket) < 0) ||
        (!c->maildrop && config_beside(x, c->spool, "maildrop", &c->maildrop) < 0) ||
        (!c->statistics_file &&
         config_inside(x, c->spool, MAILSTATS_DEFAULT_NAME, &c->statistics_file) < 0))
        return -1;
    if (config_local_computed(x, &c->local) < 0)
        return -1;
    if (config_doc_find(x->doc, "local_domains"))
        return 0;
    bool is_localhost = strcasecmp(c->hostname, "localhost") == 0;
    c->n_local_domains = is_localhost ? 1 : 2;
    if (!(c->local_domains = calloc(c->n_local_domains, sizeof(char *))))
        return config_oom(x);
    c->local_domains[0] = strdup(c->hostname);
    if (!is_localhost)
        c->local_domains[1] = strdup("localhost");
    if (!c->local_domains[0] || (!is_localhost && !c->local_domains[1]))
        return config_oom(x);
    return 0;
}

static int config_check(const struct config_ctx *x, struct config *c)
{
    for (size_t j = 0; j < c->n_listen; j++)
        if (config_check_listener(x, c, j) < 0)
            return -1;
    if (strcmp(c->tls.min_version, c->tls.max_version) > 0)
        return config_fail(x, "tls.min_version", "%s is above tls.max_version %s",
                           c->tls.min_version, c->tls.max_version);
    /* syslog and every line carry it; the log keeps no more than this (util/log.h) */
    if (strlen(c->log_ident) >= LOG_IDENT_MAX)
        return config_fail(x, "log.ident", "'%s' is longer than %d characters", c->log_ident,
                           LOG_IDENT_MAX - 1);
    /* The relay mailer is the default of both, as in sendmail's SMART_HOST and MAIL_HUB. */
    const struct {
        const char *key, *value;
    } hosts[] = {{"routing.smart_host", c->delivery.smart_host},
                 {"routing.mail_hub", c->delivery.mail_hub}};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        struct route r = {0};
        char why[256];
        if (hosts[i].value && route_parse(hosts[i].value, "relay", NULL, &r, why, sizeof(why)) < 0)
            return config_fail(x, hosts[i].key, "'%s': %s", hosts[i].value, why);
    }
    if (c->local.lmtp) {
        char value[1100], why[256];
        struct route r = {0};
        snprintf(value, sizeof(value), "lmtp:%s", c->local.lmtp);
        if (route_parse(value, NULL, NULL, &r, why, sizeof(why)) < 0)
            return config_fail(x, "mailers.lmtp", "'%s': %s", c->local.lmtp, why);
    }
    /* FEATURE(delay_checks)'s argument picks the Spam: rule (policy/policy.h) */
    const struct config_words *dc = &c->policy.delay_checks, *bl = &c->policy.blocklist_recipients;
    if (dc->n && strcmp(dc->v[0], "true") && strcmp(dc->v[0], "false") &&
        strcmp(dc->v[0], "friend") && strcmp(dc->v[0], "hater"))
        return config_fail(x, "features.delay_checks",
                           "'%s': expected true, false, friend or hater", dc->v[0]);
    if (bl->n && (bl->n > 1 || (strcmp(bl->v[0], "true") && strcmp(bl->v[0], "false"))))
        return config_fail(x, "features.blocklist_recipients", "expected true or false");
    struct clientlimit_mode mode;
    if (!clientlimit_mode_parse((const char *const *)c->policy.ratecontrol.v,
                                c->policy.ratecontrol.n, &mode))
        return config_fail(x, "features.ratecontrol", "expected true, false, nodelay, terminate");
    if (!clientlimit_mode_parse((const char *const *)c->policy.conncontrol.v,
                                c->policy.conncontrol.n, &mode))
        return config_fail(x, "features.conncontrol", "expected true, false, nodelay, terminate");
    enum log_format format;
    if (!log_format_parse(c->log_format, &format))
        return config_fail(x, "log.format", "'%s': expected text or json", c->log_format);
    if (c->queue.minimal_backoff && c->queue.minimal_backoff > c->queue.maximal_backoff)
        return config_fail(x, "queue.minimal_backoff", "is above queue.maximal_backoff");
    for (size_t i = 0; i < c->delivery.n_tls_policy; i++) {
        const struct config_tls_policy *p = &c->delivery.tls_policy[i];
        static const char *const levels[] = {"none", "may", "encrypt", "verify"};
        char path[CONFIG_PATH_MAX];
        bool known = false;
        for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++)
            known |= strcmp(p->level, levels[l]) == 0;
        snprintf(path, sizeof(path), "delivery.tls_policy[%zu].%s", i,
                 !p->destination ? "destination" : "level");
        if (!p->destination)
            return config_fail(x, path, "expected the destination this policy is for");
        if (!known)
            return config_fail(x, path, "'%s': expected none, may, encrypt or verify", p->level);
    }
    for (size_t i = 0; i < c->checks.n_dnsbl; i++) {
        char path[CONFIG_PATH_MAX];
        snprintf(path, sizeof(path), "features.dnsbl[%zu].zone", i);
        if (!c->checks.dnsbl[i].zone)
            return config_fail(x, path, "expected the blocklist's DNS zone");
    }
    /* sockaddr_un's sun_path: a longer path cannot be bound at all */
    const struct {
        const char *key, *path;
    } socks[] = {{"submission.socket", c->submission_socket},
                 {"submission.control_socket", c->control_socket}};
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++)
        if (strlen(socks[i].path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return config_fail(x, socks[i].key,
                               "'%s' is longer than a unix socket path may be "
                               "(%zu octets)",
                               socks[i].path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    if (strcmp(c->submission_socket, c->control_socket) == 0)
        return config_fail(x, "submission.control_socket", "'%s' is submission.socket too",
                           c->control_socket);
    const char *why;
    struct config_metrics *m = &c->metrics;
    if (m->listen && netaddr_hostport_parse(m->listen, m->address, sizeof(m->address), &m->port,
                                            &m->family, &why) < 0)
        return config_fail(x, "metrics.listen", "'%s': %s", m->listen, why);
    /* A session that is waiting keeps reading into this buffer; it must hold a command. */
    if (c->limits.max_input_buffer < c->limits.max_command_line)
        return config_fail(x, "limits.input_buffer",
                           "must be at least limits.command_line (%u bytes)",
                           c->limits.max_command_line);
    return 0;
}

enum log_format config_log_format(const struct config *c)
{
    enum log_format format = LOG_FORMAT_TEXT;
    log_format_parse(c->log_format, &format); /* config_check() refused anything else */
    return format;
}

int config_warn(struct config *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    char **grown = realloc(c->warnings, (c->n_warnings + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    c->warnings = grown;
    if (!(grown[c->n_warnings] = strdup(line)))
        return -1;
    c->n_warnings++;
    return 0;
}

/* One warning for each key kept for later that the file sets: nothing is silently dropped.
 * The items of a list kept for later (milters) are named by the list. */
static int config_warn_kept(const struct config_ctx *x, struct config *c,
                            const struct config_key *keys, size_t n, const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        char path[CONFIG_PATH_MAX];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", k->name);
        const struct config_pos *p = config_doc_find(x->doc, path);
        if (!p)
            continue;
        if (k->later) {
            if (config_warn(c, "%s:%u: key '%s' is accepted but not enforced yet (issue: %s)",
                            x->file, p->line, path, k->later) < 0)
                return config_oom(x);
        } else if (k->type == CONFIG_SECTION) {
            if (config_warn_kept(x, c, k->sub, k->n_sub, path) < 0)
                return -1;
        } else if (k->type == CONFIG_MAPS) {
            for (size_t j = 0;; j++) {
                char item[CONFIG_PATH_MAX + 24];
                snprintf(item, sizeof(item), "%s[%zu]", path, j);
                if (!config_doc_find(x->doc, item))
                    break;
                if (config_warn_kept(x, c, k->sub, k->n_sub, item) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int config_maps(const struct config_ctx *x, struct config *c)
{
    const char *key = NULL;
    char why[768];
    if (config_maps_load(c, x->files, &key, why, sizeof(why)) == 0)
        return 0;
    return key ? config_fail(x, key, "%s", why) : config_oom(x);
}

static int config_milters(const struct config_ctx *x, struct config *c)
{
    char key[CONFIG_PATH_MAX], why[512];
    if (config_milters_load(c, x->doc, key, sizeof(key), why, sizeof(why)) == 0)
        return 0;
    return why[0] ? config_fail(x, key, "%s", why) : config_oom(x);
}

static struct config *config_build(const char *file, const char *base, struct fileset *files,
                                   bool maps, const unsigned char *data, size_t len, char *err,
                                   size_t errlen)
{
    struct config_doc doc = {0};
    struct config_raw *raw = NULL;
    struct config *c = NULL;
    if (config_yaml_scan(file, data, len, &doc, err, errlen) < 0)
        return NULL;
    struct config_ctx x = {
        .file = file, .base = base, .files = files, .doc = &doc, .err = err, .errlen = errlen};
    /* libcyaml has nothing to load from a document without values */
    if (doc.n && config_cyaml_load(file, data, len, &raw, err, errlen) < 0)
        goto out;
    if (!(c = calloc(1, sizeof(*c))) || !(c->source = strdup(file))) {
        config_oom(&x);
    } else if (config_fill(&x, config_keys, config_n_keys, raw, c, "") == 0 &&
               config_computed(&x, c) == 0 && config_check(&x, c) == 0 &&
               config_milters(&x, c) == 0 &&
               config_warn_kept(&x, c, config_keys, config_n_keys, "") == 0 &&
               (!maps || config_maps(&x, c) == 0)) {
        goto out;
    }
    config_free(c);
    c = NULL;
out:
    config_cyaml_free(raw);
    config_doc_free(&doc);
    return c;
}

static char *config_cwd(char *err, size_t errlen)
{
    char *cwd = getcwd(NULL, 0);
    if (!cwd)
        snprintf(err, errlen, "cannot find the current directory: %s", strerror(errno));
    return cwd;
}

static struct config *config_load_with(const char *path, struct fileset *files, bool maps,
                                       char *err, size_t errlen)
{
    char *cwd = config_cwd(err, errlen);
    if (!cwd)
        return NULL;
    struct config *c = NULL;
    char *data = NULL, *dir = NULL;
    size_t len = 0;
    if (!path) {
        c = config_build(CONFIG_BUILTIN, cwd, files, maps, (const unsigned char *)"", 0, err,
                         errlen);
        if (c)
            c->tls.demo_certs = true;
    } else if (fileset_read(files, path, CONFIG_MAX_FILE, &data, &len, err, errlen) == 0) {
        if ((dir = config_path_join(cwd, path))) {
            *strrchr(dir, '/') = '\0'; /* the file's directory ("" for a file in /) */
            c = config_build(path, dir[0] ? dir : "/", files, maps, (const unsigned char *)data,
                             len, err, errlen);
        } else {
            snprintf(err, errlen, "%s: out of memory", path);
        }
    }
    free(dir);
    free(cwd);
    free(data);
    return c;
}

const char *config_find(const char *named)
{
    if (named && *named)
        return named;
    const char *env = getenv(CONFIG_ENV);
    if (env && *env)
        return env;
    /* Only when it exists: a machine where ringmail is not installed runs the built-in
     * default, which listens on loopback port 2525 and keeps its spool in ./state. */
    if (access(RINGMAIL_CONFIG_FILE, F_OK) == 0)
        return RINGMAIL_CONFIG_FILE;
    return NULL;
}

struct config *config_load(const char *path, struct fileset *files, char *err, size_t errlen)
{
    return config_load_with(path, files, true, err, errlen);
}

struct config *config_load_settings(const char *path, char *err, size_t errlen)
{
    return config_load_with(path, NULL, false, err, errlen);
}

static void config_free_map(const struct config_key *keys, size_t n, void *dst)
{
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        bool list = k->flags & CONFIG_F_LIST;
        if (k->type == CONFIG_SECTION) {
            config_free_map(k->sub, k->n_sub, dst);
            continue;
        }
        if (!list && !config_key_is_text(k))
            continue; /* a number or a bool, stored in place */
        void *p;
        memcpy(&p, (char *)dst + k->offset, sizeof(p));
        size_t count = list ? *(size_t *)(void *)((char *)dst + k->count) : 0;
        for (size_t j = 0; j < count; j++) {
            if (k->type == CONFIG_MAPS)
                config_free_map(k->sub, k->n_sub, (char *)p + j * k->width);
            else if (config_key_is_text(k))
                free(((char **)p)[j]);
        }
        free(p);
    }
}

void config_free(struct config *c)
{
    if (!c)
        return;
    config_milters_free(c);
    config_free_map(config_keys, config_n_keys, c);
    config_maps_free(c);
    for (size_t i = 0; i < c->n_warnings; i++)
        free(c->warnings[i]);
    free(c->warnings);
    free(c->source);
    free(c);
}
