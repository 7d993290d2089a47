#include "cli/verify.h"

#include <ctype.h>
#include <pwd.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/submit_client.h"
#include "core/runconf.h"
#include "delivery/route.h"

#define VERIFY_DEPTH_MAX 10 /* alias levels, sendmail's MAXRCRSN */
#define VERIFY_LINE_MAX  4096

/* The local part of `addr` without a +detail, lower-cased, into `out`. */
static void verify_local_part(const char *addr, char *out, size_t outlen)
{
    size_t n = strcspn(addr, "@+");
    if (n >= outlen)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)addr[i]);
    out[n] = '\0';
}

static const struct alias *verify_alias(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->map.n_aliases; i++) {
        const struct alias *a = aliases_lookup(&cfg->map.aliases[i], name);
        if (a)
            return a;
    }
    return NULL;
}

/* "host example.com." for an MX destination, "host [relay.example]:2525" for a named one. */
static void verify_host(const struct route *r, char *out, size_t outlen)
{
    char port[8] = "";
    if (r->port)
        snprintf(port, sizeof(port), ":%u", (unsigned)r->port);
    if (r->mx)
        snprintf(out, outlen, "%s.%s", r->host, port);
    else
        snprintf(out, outlen, "[%s]%s", r->host, port);
}

/* The sysexits status of an error ("550", "5.1.1"), as the daemon's refusal would give it. */
static int verify_error_status(const char *code, const char *status)
{
    struct submit_reply reply = {.code = atoi(code)};
    snprintf(reply.text, sizeof(reply.text), "%s %s", code, status);
    return submit_exit_status(&reply);
}

static int verify_one(const struct config *cfg, const struct route_settings *rs, const char *addr,
                      const char *parent_alias, int depth, FILE *out);

static int verify_expand(const struct config *cfg, const struct route_settings *rs,
                         const struct alias *a, int depth, FILE *out)
{
    int status = EX_OK;
    for (size_t i = 0; i < a->n_targets; i++) {
        const struct alias_target *t = &a->targets[i];
        int s = EX_OK;
        switch (t->kind) {
        case ALIAS_ADDRESS:
            s = verify_one(cfg, rs, t->value, a->name, depth + 1, out);
            break;
        case ALIAS_PROGRAM:
            fprintf(out, "\"|%s\"... deliverable: mailer prog, user \"|%s\"\n", t->value, t->value);
            break;
        case ALIAS_FILE:
            fprintf(out, "%s... deliverable: mailer *file*, user %s\n", t->value, t->value);
            break;
        case ALIAS_INCLUDE:
            fprintf(out, ":include:%s... deliverable: mailer *include*, user :include:%s\n",
                    t->value, t->value);
            break;
        case ALIAS_ERROR:
            fprintf(out, "%s... %s\n", a->name, t->value);
            s = verify_error_status(t->code, t->dsn);
            break;
        }
        if (s != EX_OK)
            status = s;
    }
    return status;
}

static int verify_local(const struct config *cfg, const struct route_settings *rs,
                        const struct route *r, const char *addr, const char *parent_alias,
                        int depth, FILE *out)
{
    char user[256];
    verify_local_part(r->host[0] ? r->host : addr, user, sizeof(user));
    /* An alias that names itself ("root: root, admin") delivers to the user, as sendmail's. */
    const struct alias *a =
        parent_alias && strcasecmp(parent_alias, user) == 0 ? NULL : verify_alias(cfg, user);
    if (a) {
        if (depth >= VERIFY_DEPTH_MAX) {
            fprintf(out, "%s... aliasing/forwarding loop broken (%d aliases deep; %d max)\n", addr,
                    depth, VERIFY_DEPTH_MAX);
            return EX_CONFIG;
        }
        return verify_expand(cfg, rs, a, depth, out);
    }
    if (!getpwnam(user)) {
        fprintf(out, "%s... User unknown\n", addr);
        return EX_NOUSER;
    }
    fprintf(out, "%s... deliverable: mailer local, user %s\n", addr, user);
    return EX_OK;
}

static int verify_one(const struct config *cfg, const struct route_settings *rs, const char *addr,
                      const char *parent_alias, int depth, FILE *out)
{
    struct route r;
    route_resolve(rs, addr, &r);
    char host[ROUTE_HOST_MAX + 16];
    switch (r.kind) {
    case ROUTE_LOCAL:
        return verify_local(cfg, rs, &r, addr, parent_alias, depth, out);
    case ROUTE_SMTP:
        verify_host(&r, host, sizeof(host));
        fprintf(out, "%s... deliverable: mailer %s, host %s, user %s\n", addr, r.mailer, host,
                addr);
        return EX_OK;
    case ROUTE_ERROR:
        fprintf(out, "%s... %s\n", addr, r.text);
        return verify_error_status(r.code, r.status);
    }
    return EX_SOFTWARE;
}

int verify_addresses(const struct config *cfg, const char *const *addrs, size_t n, FILE *out)
{
    struct route_settings rs = runconf_route_settings(cfg);
    int status = EX_OK;
    for (size_t i = 0; i < n; i++) {
        int s = verify_one(cfg, &rs, addrs[i], NULL, 0, out);
        if (s != EX_OK)
            status = s;
    }
    return status;
}

/* ruleset 0's answer in sendmail's notation: "$# esmtp $@ example.com. $: bob@example.com". */
static void verify_triple(const struct route_settings *rs, const char *addr, FILE *out)
{
    struct route r;
    route_resolve(rs, addr, &r);
    char host[ROUTE_HOST_MAX + 16];
    switch (r.kind) {
    case ROUTE_LOCAL: {
        char user[256];
        verify_local_part(r.host[0] ? r.host : addr, user, sizeof(user));
        fprintf(out, "$# local $: %s\n", user);
        break;
    }
    case ROUTE_SMTP:
        verify_host(&r, host, sizeof(host));
        fprintf(out, "$# %s $@ %s $: %s\n", r.mailer, host, addr);
        break;
    case ROUTE_ERROR:
        fprintf(out, "$# error $@ %s $: \"%s %s\"\n", r.status, r.code, r.text);
        break;
    }
}

static void verify_map(const struct config *cfg, const char *map, const char *key, FILE *out)
{
    char lower[512];
    size_t n = strlen(key) < sizeof(lower) ? strlen(key) : sizeof(lower) - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)key[i]);
    lower[n] = '\0';
    const struct map_simple_entry *e = NULL;
    char value[1024] = "";
    bool found = false;
    if (strcmp(map, "mailertable") == 0 || strcmp(map, "genericstable") == 0) {
        e = map_simple_get(map[0] == 'm' ? &cfg->map.mailertable : &cfg->map.genericstable, lower);
    } else if (strcmp(map, "virtusertable") == 0) {
        e = map_simple_get(&cfg->map.virtusertable, lower);
    } else if (strcmp(map, "aliases") == 0) {
        const struct alias *a = verify_alias(cfg, lower);
        for (size_t i = 0; a && i < a->n_targets; i++) {
            size_t used = strlen(value);
            snprintf(value + used, sizeof(value) - used, "%s%s", i ? "," : "", a->targets[i].value);
        }
        found = a != NULL;
    } else {
        fprintf(out, "Map named \"%s\" not found\n", map);
        return;
    }
    if (e) {
        snprintf(value, sizeof(value), "%s", e->value);
        found = true;
    }
    if (found)
        fprintf(out, "map_lookup: %s (%s) returns %s (0)\n", map, key, value);
    else
        fprintf(out, "map_lookup: %s (%s) no match (68)\n", map, key);
}

/* Splits "WORD rest" into a NUL-terminated word and the rest (leading blanks skipped). */
static char *verify_word(char *s, char **rest)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strcspn(s, " \t");
    *rest = end;
    if (*end) {
        *end = '\0';
        *rest = end + 1;
        while (**rest == ' ' || **rest == '\t')
            (*rest)++;
    }
    return s;
}

/* Does the ruleset list "3,0" / "parse" / "canonify,parse" end in ruleset 0? */
static bool verify_rulesets_end_in_parse(const char *list)
{
    const char *last = strrchr(list, ',');
    last = last ? last + 1 : list;
    return strcmp(last, "0") == 0 || strcasecmp(last, "parse") == 0;
}

static bool verify_rulesets_known(const char *list)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (!((n == 1 && (p[0] == '0' || p[0] == '3')) || (n == 5 && !strncasecmp(p, "parse", 5)) ||
              (n == 8 && !strncasecmp(p, "canonify", 8))))
            return false;
        p += n + (p[n] == ',');
    }
    return true;
}

static void verify_help(FILE *out)
{
    fprintf(out, "Help for test mode (ringmail's subset):\n"
                 "?                 :this help message.\n"
                 "/parse address    :parse address, returning the value of crackaddr, and\n"
                 "                   the parsed address.\n"
                 "/try mailer addr  :rewrite address for mailer (no rewriting in ringmail).\n"
                 "/map mapname key  :look up `key' in the indicated `mapname' (mailertable,\n"
                 "                   virtusertable, genericstable, aliases).\n"
                 "/quit             :quit address test mode.\n"
                 "rules addr        :run the rulesets (3 and 0) on addr: ruleset 0's\n"
                 "                   $# mailer $@ host $: user.\n");
}

/* One command; false for /quit. */
static bool verify_command(const struct config *cfg, const struct route_settings *rs, char *line,
                           FILE *out)
{
    char *rest;
    char *cmd = verify_word(line, &rest);
    if (!*cmd || *cmd == '#')
        return true;
    if (strcmp(cmd, "/quit") == 0)
        return false;
    if (strcmp(cmd, "?") == 0 || strcmp(cmd, "/help") == 0) {
        verify_help(out);
    } else if (strcmp(cmd, "/parse") == 0) {
        if (!*rest) {
            fprintf(out, "Usage: /parse address\n");
            return true;
        }
        fprintf(out, "Cracked address = $g\nParsing envelope recipient address\n");
        struct route r;
        route_resolve(rs, rest, &r);
        char host[ROUTE_HOST_MAX + 16];
        if (r.kind == ROUTE_SMTP) {
            verify_host(&r, host, sizeof(host));
            fprintf(out, "mailer %s, host %s, user %s\n", r.mailer, host, rest);
        } else if (r.kind == ROUTE_LOCAL) {
            char user[256];
            verify_local_part(r.host[0] ? r.host : rest, user, sizeof(user));
            fprintf(out, "mailer local, user %s\n", user);
        } else {
            fprintf(out, "mailer error, host %s, user %s %s\n", r.status, r.code, r.text);
        }
    } else if (strcmp(cmd, "/try") == 0) {
        char *addr;
        char *mailer = verify_word(rest, &addr);
        if (!*mailer || !*addr) {
            fprintf(out, "Usage: /try mailer address\n");
            return true;
        }
        fprintf(out, "Trying envelope recipient address %s for mailer %s\nRcode = 0, addr = %s\n",
                addr, mailer, addr);
    } else if (strcmp(cmd, "/map") == 0) {
        char *key;
        char *map = verify_word(rest, &key);
        if (!*map || !*key)
            fprintf(out, "Usage: /map mapname key\n");
        else
            verify_map(cfg, map, key, out);
    } else if (cmd[0] == '/') {
        fprintf(out, "Unknown \"/\" command %s\n", cmd);
    } else if (!verify_rulesets_known(cmd)) {
        fprintf(out, "Undefined ruleset %s\n", cmd);
    } else {
        fprintf(out, "%-18s input: %s\n", cmd, rest);
        if (verify_rulesets_end_in_parse(cmd)) {
            fprintf(out, "%-18s returns: ", "parse");
            verify_triple(rs, rest, out);
        } else {
            fprintf(out, "%-18s returns: %s\n", "canonify", rest);
        }
    }
    return true;
}

int verify_test_mode(const struct config *cfg, FILE *in, FILE *out)
{
    struct route_settings rs = runconf_route_settings(cfg);
    bool echo = !isatty(fileno(in));
    fprintf(out, "ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)\n"
                 "Enter <ruleset> <address>\n");
    char line[VERIFY_LINE_MAX];
    for (;;) {
        fprintf(out, "> ");
        fflush(out);
        if (!fgets(line, sizeof(line), in))
            break;
        line[strcspn(line, "\r\n")] = '\0';
        if (echo)
            fprintf(out, "%s\n", line);
        if (!verify_command(cfg, &rs, line, out))
            break;
    }
    fprintf(out, "\n");
    return EX_OK;
}
