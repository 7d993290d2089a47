/*
 * core/config_maps.c — the sendmail text maps that maps.* names, read with the parsers in
 * compat/ whenever a configuration is loaded (start-up, --check-config, SIGHUP): a broken
 * map is a configuration error naming the map's file and line, and a reload re-reads them
 * all (a broken one keeps the running configuration, like a broken config file).
 */
#include "core/config.h"
#include "core/config_int.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat/map_aliases.h"
#include "compat/map_list.h"
#include "policy/clientlimit.h"
#include "util/buf.h"

/* :include: files one configuration reads at most. */
#define CONFIG_MAX_INCLUDES 1000
#include "compat/map_text.h"
#include "util/fileset.h"

static int config_maps_oom(char *why, size_t whylen)
{
    snprintf(why, whylen, "out of memory");
    return -1;
}

/* Appends `name` to a list of struct config unless it is there already (`same` decides:
 * domains compare without case, user names with it). */
static int config_maps_append(char ***list, size_t *n, const char *name,
                              int (*same)(const char *, const char *))
{
    for (size_t i = 0; i < *n; i++)
        if (same((*list)[i], name) == 0)
            return 0;
    char **grown = realloc(*list, (*n + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    *list = grown;
    if (!(grown[*n] = strdup(name)))
        return -1;
    (*n)++;
    return 0;
}

/* User names as a class t file holds them: any word without control octets (Linux restricts
 * login names no further); '#' starts a comment, as in map_list. */
static int config_maps_user_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    struct map_strings *out = ctx;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    for (char *tok = strtok(line, " \t\r"); tok; tok = strtok(NULL, " \t\r")) {
        for (const unsigned char *p = (const unsigned char *)tok; *p; p++)
            if (*p < 0x21 || *p == 0x7f)
                return map_fail(r, lineno, "'%s' is not a user name (control character)", tok);
        if (map_strings_add(out, tok) < 0)
            return map_fail(r, lineno, "out of memory");
    }
    return 0;
}

static int config_maps_user_parse(const char *file, const char *text, size_t len,
                                  struct map_strings *out, char *err, size_t errlen)
{
    return map_each_line(file, text, len, false, err, errlen, config_maps_user_line, out);
}

/* How a class file's names are read and compared. */
struct config_maps_class_kind {
    int (*parse)(const char *file, const char *text, size_t len, struct map_strings *out, char *err,
                 size_t errlen);
    int (*same)(const char *, const char *);
};

static const struct config_maps_class_kind config_maps_domains = {map_list_parse, strcasecmp};
static const struct config_maps_class_kind config_maps_users = {config_maps_user_parse, strcmp};

/* A class file (local-host-names, relay-domains, trusted-users) into a list. sendmail reads
 * them with -o (optional): a missing file is read as empty, and said so. */
static int config_maps_class(struct config *c, struct fileset *files, const char *path,
                             const struct config_maps_class_kind *kind, char ***list, size_t *n,
                             char *why, size_t whylen)
{
    char *data = NULL;
    size_t len = 0;
    struct map_strings names = {0};
    int rc = fileset_read(files, path, MAP_FILE_MAX, &data, &len, why, whylen);
    if (rc == -ENOENT)
        return config_warn(c, "%s: not found: read as empty, as sendmail reads it (-o)", path) < 0
                   ? config_maps_oom(why, whylen)
                   : 0;
    if (rc == 0)
        rc = kind->parse(path, data, len, &names, why, whylen);
    for (size_t i = 0; rc == 0 && i < names.n; i++)
        if (config_maps_append(list, n, names.v[i], kind->same) < 0)
            rc = config_maps_oom(why, whylen);
    map_strings_free(&names);
    free(data);
    return rc;
}

/* What the daemon does not act on in an access map, one warning per kind (a real map has
 * hundreds of From: lines; one line each would bury the rest of the log). */
enum config_access_gap {
    GAP_CONNECT_NAME, /* Connect: by host name, with dns.peername_lookup off */
    GAP_TO_REFUSAL,   /* To: refusals without features.blocklist_recipients, as sendmail */
    GAP_SPAM,         /* Spam: entries without features.delay_checks friend or hater */
    GAP_OTHER_TAG,    /* tags the daemon does not read (Srv_Features:, ...) */
    GAP_N
};

static const char *const config_access_gap_text[GAP_N] = {
    "Connect: entries by host name (dns.peername_lookup is off: no client name is looked up)",
    "To: refusals without features.blocklist_recipients (sendmail ignores them too)",
    "Spam: entries without features.delay_checks [friend] or [hater]",
    "entries with other tags",
};

/* What a Connect:/From:/To: entry does beyond OK, RELAY and SKIP. */
static bool config_access_refuses(const struct access_entry *e)
{
    return e->action != ACCESS_OK && e->action != ACCESS_RELAY && e->action != ACCESS_SKIP;
}

/* A feature's words: on unless absent or "false" (core/runconf.c reads them alike). */
static bool config_feature_on(const struct config_words *w, const char *arg)
{
    return w->n > 0 && strcmp(w->v[0], "false") != 0 && (!arg || strcmp(w->v[0], arg) == 0);
}

static bool config_access_is_ip(const char *key)
{
    return strncmp(key, "ipv6:", 5) == 0 || strspn(key, "0123456789.") == strlen(key);
}

static int config_access_gaps(struct config *c, const char *path)
{
    size_t count[GAP_N] = {0};
    unsigned first[GAP_N] = {0};
    const struct access_map *m = &c->map.access;
    for (size_t i = 0; i < m->n; i++) {
        const struct access_entry *e = &m->v[i];
        bool connect = e->tag && strcmp(e->tag, "connect") == 0;
        bool to = e->tag && strcmp(e->tag, "to") == 0;
        bool spam = e->tag && strcmp(e->tag, "spam") == 0;
        /* the delivery side's STARTTLS policy (delivery/tlspolicy.h) and AUTH credentials */
        bool tls = e->tag && (strcmp(e->tag, "tls_srv") == 0 || strcmp(e->tag, "try_tls") == 0 ||
                              strcmp(e->tag, "authinfo") == 0);
        /* FEATURE(ratecontrol), FEATURE(conncontrol) (policy/clientlimit.h) */
        unsigned limit;
        bool client = e->tag &&
                      (strcmp(e->tag, "clientrate") == 0 || strcmp(e->tag, "clientconn") == 0) &&
                      clientlimit_value(e->value, &limit);
        bool pause = e->tag && strcmp(e->tag, "greetpause") == 0; /* policy/greet_pause.h */
        bool action = !e->tag || connect || to || strcmp(e->tag, "from") == 0;
        bool blocklist = config_feature_on(&c->policy.blocklist_recipients, NULL);
        bool spam_on = config_feature_on(&c->policy.delay_checks, "friend") ||
                       config_feature_on(&c->policy.delay_checks, "hater");
        int gap = spam                                   ? (spam_on ? -1 : GAP_SPAM)
                  : !action && !tls && !client && !pause ? GAP_OTHER_TAG
                  : connect && !c->checks.peername_lookup && !config_access_is_ip(e->key)
                      ? GAP_CONNECT_NAME
                  : to && !blocklist && config_access_refuses(e) ? GAP_TO_REFUSAL
                                                                 : -1;
        if (gap >= 0 && count[gap]++ == 0)
            first[gap] = e->line;
    }
    for (int g = 0; g < GAP_N; g++)
        if (count[g] && config_warn(c,
                                    "%s:%u: %s: accepted but not enforced yet (%zu entr%s; "
                                    "issue: policy)",
                                    path, first[g], config_access_gap_text[g], count[g],
                                    count[g] == 1 ? "y" : "ies") < 0)
            return -1;
    return 0;
}

/* The access map, the aliases files and the routing maps: parsed now so that an error stops
 * the load; only the access map is used by the daemon today. */
static int config_maps_parse(struct config *c, struct fileset *files, const char *path,
                             const char *key, const char **at, char *why, size_t whylen)
{
    char *data = NULL;
    size_t len = 0;
    int rc = fileset_read(files, path, MAP_FILE_MAX, &data, &len, why, whylen) < 0 ? -1 : 0;
    struct config_map_data *d = &c->map;
    if (rc == 0 && strcmp(key, "maps.access") == 0) {
        rc = access_parse(path, data, len, &d->access, why, whylen);
        if (rc == 0 && config_access_gaps(c, path) < 0)
            rc = config_maps_oom(why, whylen);
    } else if (rc == 0 && strcmp(key, "maps.aliases") == 0) {
        struct alias_map *grown = realloc(d->aliases, (d->n_aliases + 1) * sizeof(*grown));
        if (!grown) {
            rc = config_maps_oom(why, whylen);
        } else {
            d->aliases = grown;
            memset(&grown[d->n_aliases], 0, sizeof(*grown));
            rc = aliases_parse(path, data, len, &grown[d->n_aliases++], why, whylen);
        }
    } else if (rc == 0) {
        bool mt = strcmp(key, "maps.mailertable") == 0, vt = strcmp(key, "maps.virtusertable") == 0;
        rc = map_simple_parse(mt   ? MAP_MAILERTABLE
                              : vt ? MAP_VIRTUSERTABLE
                                   : MAP_GENERICSTABLE,
                              path, data, len,
                              mt   ? &d->mailertable
                              : vt ? &d->virtusertable
                                   : &d->genericstable,
                              why, whylen);
    }
    free(data);
    if (rc < 0)
        *at = key;
    return rc;
}

/* The AUTH client's credentials: maps.authinfo, read only when private to root (the parent
 * reads it; the engine gets its bytes), else the access map's AuthInfo: entries. */
static int config_maps_authinfo(struct config *c, struct fileset *files, char *why, size_t whylen)
{
    const char *path = c->maps.authinfo;
    if (!path)
        return c->maps.access ? authinfo_from_access(c->maps.access, &c->map.access,
                                                     &c->map.authinfo, why, whylen)
                              : 0;
    char *data;
    size_t len;
    int rc = fileset_read_private(files, path, MAP_FILE_MAX, &data, &len, why, whylen) < 0
                 ? -1
                 : authinfo_parse(path, data, len, &c->map.authinfo, why, whylen);
    if (data)
        explicit_bzero(data, len);
    free(data);
    return rc;
}

/* Adds `path` to the :include: files to read (once). 0, or -1 when memory ran out. */
static int config_maps_include_add(struct config_map_data *d, const char *path)
{
    for (size_t i = 0; i < d->n_includes; i++)
        if (strcmp(d->includes[i].path, path) == 0)
            return 0;
    /* a list naming lists naming lists is bounded as sendmail's MaxAliasRecursion bounds
     * its expansion; past this the file is reported unreadable at delivery */
    if (d->n_includes >= CONFIG_MAX_INCLUDES)
        return 0;
    struct config_include *grown = realloc(d->includes, (d->n_includes + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    d->includes = grown;
    grown[d->n_includes] = (struct config_include){.path = strdup(path), .err = ENOENT};
    if (!grown[d->n_includes].path)
        return -1;
    d->n_includes++;
    return 0;
}

static int config_maps_include_targets(struct config_map_data *d, const struct alias_target *t,
                                       size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].kind == ALIAS_INCLUDE && config_maps_include_add(d, t[i].value) < 0)
            return -1;
    return 0;
}

/* :include: files are read when the configuration is: the parent may read what the engine
 * may not, and a list that changes is seen at the next reload (SIGHUP, or the aliases file
 * changing). A file that cannot be read is not a configuration error: its recipients
 * bounce or wait as sendmail's would (compat/alias_expand.h). Lists named by lists are
 * read too. */
static int config_maps_includes(struct config *c, struct fileset *files)
{
    struct config_map_data *d = &c->map;
    for (size_t a = 0; a < d->n_aliases; a++)
        for (size_t i = 0; i < d->aliases[a].n; i++)
            if (config_maps_include_targets(d, d->aliases[a].v[i].targets,
                                            d->aliases[a].v[i].n_targets) < 0)
                return -1;
    for (size_t i = 0; i < d->n_includes; i++) {
        struct config_include *inc = &d->includes[i];
        char why[256];
        char *path = inc->path; /* inc moves when the array grows */
        int rc = fileset_read(files, path, MAP_FILE_MAX, &inc->text, &inc->len, why, sizeof(why));
        if (rc == -ENOMEM)
            return -1;
        inc->err = -rc;
        if (rc < 0)
            continue;
        struct alias_list l = {0};
        rc = aliases_parse_targets(path, inc->text, inc->len, &l) < 0
                 ? -1
                 : config_maps_include_targets(d, l.v, l.n);
        alias_list_free(&l);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int config_include_text(const struct config *c, const char *path, const char **text, size_t *len)
{
    for (size_t i = 0; i < c->map.n_includes; i++) {
        const struct config_include *inc = &c->map.includes[i];
        if (strcmp(inc->path, path) != 0)
            continue;
        if (inc->err)
            return -inc->err;
        *text = inc->text;
        *len = inc->len;
        return 0;
    }
    return -ENOENT;
}

/* The login names, one a line: what the parent saw through NSS when it loaded. */
static int config_maps_list_users(void *arg, char **data, size_t *len)
{
    (void)arg;
    struct buf out;
    buf_init(&out, 0);
    int rc = 0;
    setpwent();
    for (struct passwd *pw; rc == 0 && (pw = getpwent());)
        if (pw->pw_name[0] && !strchr(pw->pw_name, '\n'))
            rc = buf_printf(&out, "%s\n", pw->pw_name);
    endpwent();
    if (rc == 0)
        rc = buf_append(&out, "", 1);
    if (rc < 0) {
        buf_free(&out);
        return -ENOMEM;
    }
    *len = out.len - 1;
    *data = out.data;
    return 0;
}

static int config_users_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int config_maps_logins(struct config *c, struct fileset *files, char *why, size_t whylen)
{
    char *text;
    size_t len;
    if (fileset_generate(files, "(users)", config_maps_list_users, NULL, &text, &len, why, whylen) <
        0)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    struct config_map_data *d = &c->map;
    if (n && !(d->users = calloc(n, sizeof(char *)))) {
        free(text);
        return config_maps_oom(why, whylen);
    }
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        if (!(d->users[d->n_users] = strdup(line))) {
            free(text);
            return config_maps_oom(why, whylen);
        }
        d->n_users++;
    }
    free(text);
    qsort(d->users, d->n_users, sizeof(char *), config_users_cmp);
    return 0;
}

bool config_user_exists(const struct config *c, const char *login)
{
    return c->map.n_users &&
           bsearch(&login, c->map.users, c->map.n_users, sizeof(char *), config_users_cmp);
}

int config_maps_load(struct config *c, struct fileset *files, const char **key, char *why,
                     size_t whylen)
{
    const struct config_maps *m = &c->maps;
    *key = NULL;
    const struct {
        const char *key, *path;
        const struct config_maps_class_kind *kind;
        char ***list;
        size_t *n;
    } classes[] = {
        {"maps.local_host_names", m->local_host_names, &config_maps_domains, &c->local_domains,
         &c->n_local_domains},
        {"maps.relay_domains_file", m->relay_domains_file, &config_maps_domains, &c->relay_domains,
         &c->n_relay_domains},
        /* one list of trusted users: the file's names join submission.trusted_users */
        {"maps.trusted_users", m->trusted_users, &config_maps_users, &c->trusted_users,
         &c->n_trusted_users},
        /* the masquerading classes: the files' names join the lists (sendmail's F lines) */
        {"masquerade.domains_file", c->masquerade.domains_file, &config_maps_domains,
         &c->masquerade.domains.v, &c->masquerade.domains.n},
        {"masquerade.exceptions_file", c->masquerade.exceptions_file, &config_maps_domains,
         &c->masquerade.exceptions.v, &c->masquerade.exceptions.n},
        {"masquerade.exposed_users_file", c->masquerade.exposed_users_file, &config_maps_users,
         &c->masquerade.exposed_users.v, &c->masquerade.exposed_users.n},
        {"masquerade.generics_domains_file", c->masquerade.generics_domains_file,
         &config_maps_domains, &c->masquerade.generics_domains.v,
         &c->masquerade.generics_domains.n},
    };
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (classes[i].path && config_maps_class(c, files, classes[i].path, classes[i].kind,
                                                 classes[i].list, classes[i].n, why, whylen) < 0) {
            *key = classes[i].key;
            return -1;
        }
    const struct {
        const char *key, *path;
    } parsed[] = {
        {"maps.access", m->access},
        {"maps.mailertable", m->mailertable},
        {"maps.virtusertable", m->virtusertable},
        {"maps.genericstable", m->genericstable},
    };
    for (size_t i = 0; i < sizeof(parsed) / sizeof(parsed[0]); i++)
        if (parsed[i].path &&
            config_maps_parse(c, files, parsed[i].path, parsed[i].key, key, why, whylen) < 0)
            return -1;
    if (config_maps_authinfo(c, files, why, whylen) < 0) {
        *key = "maps.authinfo";
        return -1;
    }
    for (size_t i = 0; i < m->aliases.n; i++)
        if (config_maps_parse(c, files, m->aliases.v[i], "maps.aliases", key, why, whylen) < 0)
            return -1;
    if (config_maps_includes(c, files) < 0 || config_maps_logins(c, files, why, whylen) < 0) {
        *key = "maps.aliases";
        return -1;
    }
    return 0;
}

void config_maps_free(struct config *c)
{
    struct config_map_data *d = &c->map;
    access_free(&d->access);
    authinfo_free(&d->authinfo);
    for (size_t i = 0; i < d->n_aliases; i++)
        aliases_free(&d->aliases[i]);
    free(d->aliases);
    map_simple_free(&d->mailertable);
    map_simple_free(&d->virtusertable);
    map_simple_free(&d->genericstable);
    for (size_t i = 0; i < d->n_includes; i++) {
        free(d->includes[i].path);
        free(d->includes[i].text);
    }
    free(d->includes);
    for (size_t i = 0; i < d->n_users; i++)
        free(d->users[i]);
    free(d->users);
}
