/* compat/mc_daemon.c — DAEMON_OPTIONS and CLIENT_OPTIONS, as sendmail's
 * setdaemonoptions() reads them, and the listeners they become. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat/mc_int.h"
#include "util/netaddr.h"

/* sendmail tells fields apart by their first letter alone ("Adress=" is Addr=). */
static const char *const mc_fields[] = {"Addr",   "Family",      "InputMailFilters",
                                        "Listen", "Modifiers",   "Name",
                                        "Port",   "ReceiveSize", "SendSize"};

static const char *mc_field(const char *name)
{
    for (size_t i = 0; i < sizeof(mc_fields) / sizeof(mc_fields[0]); i++)
        if (toupper((unsigned char)name[0]) == mc_fields[i][0])
            return mc_fields[i];
    return NULL;
}

static int mc_port(const char *v)
{
    static const struct {
        const char *name;
        int port;
    } services[] = {{"smtp", 25}, {"submission", 587}, {"smtps", 465}, {"msa", 587}};
    bool clean;
    uint64_t n = mc_atoi(v, &clean);
    if (clean)
        return n >= 1 && n <= 65535 ? (int)n : -1;
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
        if (strcasecmp(v, services[i].name) == 0)
            return services[i].port;
    return -1;
}

static void mc_trim(char *s)
{
    char *p = s, *end;
    while (isspace((unsigned char)*p))
        p++;
    memmove(s, p, strlen(p) + 1);
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
}

/* Parses the spec into d; MC_STOP on a malformed field, MC_SKIP when the listener cannot
 * be carried over (reported), MC_GO_ON otherwise. */
static enum mc_verdict mc_daemon_parse(struct mc_state *st, const char *what, const char *spec,
                                       struct mc_daemon *d, struct mc_loc loc)
{
    char copy[1024], *save = NULL;
    bool seen[sizeof(mc_fields) / sizeof(mc_fields[0])] = {false};
    snprintf(copy, sizeof(copy), "%s", spec);
    for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        mc_trim(f);
        if (!*f)
            continue;
        char *eq = strchr(f, '=');
        const char *field = mc_field(f);
        if (!eq || !field)
            return mc_fail(st, loc,
                           "%s: bad field '%s' (expected Name=value with Addr, Family, "
                           "Modifiers, Name or Port)",
                           what, f);
        *eq = '\0';
        char *v = eq + 1;
        mc_trim(f);
        mc_trim(v);
        size_t idx = (size_t)(strchr("AFILMNPRS", field[0]) - "AFILMNPRS");
        if (strcasecmp(f, field) != 0 && !(field[0] == 'M' && strcasecmp(f, "M") == 0))
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: '%s=' is read as %s= (sendmail looks only at the first letter)",
                          what, f, field);
        if (seen[idx] && field[0] != 'M')
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: %s= given twice; the last one (%s) wins, as in sendmail", what,
                          field, v);
        seen[idx] = true;
        int port;
        switch (field[0]) {
        case 'A':
            if (!netaddr_is_ip(v)) {
                mc_report_add(st->report, loc, MC_PERSON,
                              "%s: Addr=%s is not an IP address; ringmail binds addresses only, "
                              "so this listener is not carried over",
                              what, v);
                return MC_SKIP;
            }
            snprintf(d->addr, sizeof(d->addr), "%s", v);
            break;
        case 'F':
            if (strcasecmp(v, "inet") && strcasecmp(v, "inet6")) {
                mc_report_add(st->report, loc, MC_PERSON,
                              "%s: Family=%s is not supported (inet or inet6); this listener "
                              "is not carried over",
                              what, v);
                return MC_SKIP;
            }
            snprintf(d->family, sizeof(d->family), "%s", strcasecmp(v, "inet") ? "inet6" : "inet");
            break;
        case 'P':
            if ((port = mc_port(v)) < 0)
                return mc_fail(st, loc,
                               "%s: Port=%s is not a port number or a known service "
                               "(smtp, submission, smtps)",
                               what, v);
            d->port = (unsigned)port;
            break;
        case 'N':
            snprintf(d->name, sizeof(d->name), "%s", v);
            break;
        case 'M': /* sendmail sets each letter's bit: several M= add up */
            for (const char *c = v; *c; c++) {
                size_t n = strlen(d->modifiers);
                if (!isalnum((unsigned char)*c) || strchr(d->modifiers, *c) ||
                    n + 1 >= sizeof(d->modifiers))
                    continue;
                d->modifiers[n] = *c;
                d->modifiers[n + 1] = '\0';
            }
            break;
        case 'I': /* the names are checked once every filter is declared (mc_milter.c) */
            d->has_filters = true;
            snprintf(d->filters, sizeof(d->filters), "%s", v);
            break;
        default: /* Listen=, ReceiveSize=, SendSize=: socket tuning */
            mc_report_add(st->report, loc, MC_IGNORED,
                          "%s: %s= is socket tuning ringmail does itself", what, field);
            break;
        }
    }
    return MC_GO_ON;
}

enum mc_verdict mc_daemon_options(struct mc_state *st, const char *spec, bool client,
                                  struct mc_loc loc)
{
    const char *what = client ? "CLIENT_OPTIONS" : "DAEMON_OPTIONS";
    struct mc_daemon d = {.port = client ? 0 : 25};
    enum mc_verdict v = mc_daemon_parse(st, what, spec, &d, loc);
    if (v != MC_GO_ON)
        return v == MC_SKIP ? MC_GO_ON : v;
    if (client) {
        struct mc_yaml *item = mc_yaml_add_map(st->yaml, "client", true);
        if (item && d.family[0])
            mc_yaml_set(item, "family", d.family, true, NULL);
        if (item && d.addr[0])
            mc_yaml_set(item, "address", d.addr, true, NULL);
        char port[8];
        snprintf(port, sizeof(port), "%u", d.port);
        if (item && d.port)
            mc_yaml_set(item, "port", port, true, NULL);
        mc_report_add(st->report, loc, MC_KEPT, "%s -> client[]", what);
        return MC_GO_ON;
    }
    if (st->n_daemons + 1 >= MC_MAX_DAEMONS) /* room for the default MSA */
        return mc_fail(st, loc, "%s: more than %d listeners", what, MC_MAX_DAEMONS);
    mc_save_loc(&d.at, loc);
    st->daemons[st->n_daemons++] = d;
    mc_report_add(st->report, loc, MC_TRANSLATED, "%s -> listen[%zu]", what, st->n_daemons - 1);
    return MC_GO_ON;
}

/* M= letters that change what a client must do on the listener, which ringmail cannot do
 * yet: written commented out, never as a listener that would let clients skip them. */
static const struct {
    char letter;
    const char *why, *note; /* for the report, and the line above the listener */
} mc_unmet_modifiers[] = {
    {'s',
     "M=s: TLS from the first byte (SMTPS); ringmail offers STARTTLS only, so clients here "
     "would not get the TLS they expect",
     "M=s (TLS on connect): ringmail has STARTTLS only"},
};

/* Returns whether the listener is written live. */
static bool mc_listener(struct mc_state *st, struct mc_daemon *d, size_t index)
{
    struct mc_loc loc = mc_saved(&d->at);
    char name[sizeof(d->name)], port[8], note[512] = "";
    if (!d->family[0])
        snprintf(d->family, sizeof(d->family), "%s", strchr(d->addr, ':') ? "inet6" : "inet");
    if (!d->addr[0]) {
        snprintf(d->addr, sizeof(d->addr), "%s", strcmp(d->family, "inet6") ? "0.0.0.0" : "::");
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "listen[%zu]: no Addr=, so sendmail listens on every address; ringmail's "
                      "own default is loopback, so the address is written out: %s",
                      index, d->addr);
    }
    snprintf(name, sizeof(name), "%s", d->name[0] ? d->name : "Daemon");
    for (size_t i = 0; i < index; i++) /* ringmail wants unique names; sendmail does not */
        if (strcmp(st->daemons[i].name, name) == 0) {
            snprintf(name, sizeof(name), "%.40s-%zu", d->name[0] ? d->name : "Daemon", index);
            mc_report_add(st->report, loc, MC_WARNING,
                          "listen[%zu]: the name %s is taken; renamed %s", index, d->name, name);
        }
    snprintf(d->name, sizeof(d->name), "%s", name);
    snprintf(port, sizeof(port), "%u", d->port);
    for (size_t i = 0; i < sizeof(mc_unmet_modifiers) / sizeof(mc_unmet_modifiers[0]); i++) {
        if (!strchr(d->modifiers, mc_unmet_modifiers[i].letter))
            continue;
        mc_report_add(st->report, loc, MC_PERSON,
                      "listen[%zu] (%s, port %u): %s. The listener is written commented out "
                      "until ringmail can do it",
                      index, d->name, d->port, mc_unmet_modifiers[i].why);
        size_t n = strlen(note);
        snprintf(note + n, sizeof(note) - n, "%s%s",
                 n ? "; " : "needs a person (see the report): ", mc_unmet_modifiers[i].note);
    }
    /* M=a with nothing to authenticate with would take no mail at all (ringmaild refuses
     * to load it): sendmail's compiled-in AuthMechanisms are not assumed */
    if (strchr(d->modifiers, 'a') && !mc_yaml_get(st->yaml, "auth.mechanisms")) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "listen[%zu] (%s, port %u): M=a requires AUTH, but the .mc sets no "
                      "confAUTH_MECHANISMS: set auth.mechanisms (docs/auth.md). The listener is "
                      "written commented out until then",
                      index, d->name, d->port);
        size_t n = strlen(note);
        snprintf(note + n, sizeof(note) - n, "%s%s", n ? "; " : "needs a person (see the report): ",
                 "M=a (AUTH required) without auth.mechanisms");
    }
    bool live = !note[0];
    struct mc_yaml *item = mc_yaml_add_map(st->yaml, "listen", !live);
    if (!item)
        return false;
    if (!live)
        mc_yaml_note(item, note);
    mc_yaml_set(item, "name", d->name, !live, NULL);
    mc_yaml_set(item, "address", d->addr, !live, NULL);
    mc_yaml_set(item, "port", port, !live, NULL);
    mc_yaml_set(item, "family", d->family, !live, NULL);
    if (strchr(d->modifiers, 'S')) {
        mc_yaml_set(item, "starttls", "false", !live, NULL);
        if (live) /* else the listener's own entry says why it is not */
            mc_report_add(st->report, loc, MC_TRANSLATED,
                          "listen[%zu]: M=S (no STARTTLS offered) -> listen[%zu].starttls = "
                          "false",
                          index, index);
    }
    /* M=a: AUTH before any mail (530 5.7.0); M=A: no AUTH offered here */
    if (strchr(d->modifiers, 'a')) {
        mc_yaml_set(item, "auth_required", "true", !live, NULL);
        if (live)
            mc_report_add(st->report, loc, MC_TRANSLATED,
                          "listen[%zu]: M=a (AUTH required) -> listen[%zu].auth_required = true",
                          index, index);
    }
    if (strchr(d->modifiers, 'A')) {
        mc_yaml_set(item, "auth", "false", !live, NULL);
        if (live)
            mc_report_add(st->report, loc, MC_TRANSLATED,
                          "listen[%zu]: M=A (no AUTH) -> listen[%zu].auth = false", index, index);
    }
    mc_milter_listener(st, item, d, index, live);
    if (d->modifiers[0]) {
        mc_yaml_set(item, "modifiers", d->modifiers, true, "sendmail M= flags");
        mc_report_add(st->report, loc, MC_KEPT, "listen[%zu]: M=%s -> listen[%zu].modifiers = %s",
                      index, d->modifiers, index, d->modifiers);
    }
    return live;
}

/* The listener among the first n that binds the same port as d on an overlapping
 * address (the same one, or a wildcard of the same family), or NULL. */
static const struct mc_daemon *mc_clash(const struct mc_daemon *v, size_t n,
                                        const struct mc_daemon *d)
{
    bool d_any = !d->addr[0] || !strcmp(d->addr, "0.0.0.0") || !strcmp(d->addr, "::");
    for (size_t i = 0; i < n; i++) {
        bool any = !strcmp(v[i].addr, "0.0.0.0") || !strcmp(v[i].addr, "::");
        const char *fam = d->family[0] ? d->family : strchr(d->addr, ':') ? "inet6" : "inet";
        if (v[i].port == d->port && !strcmp(v[i].family, fam) &&
            (any || d_any || !strcmp(v[i].addr, d->addr)))
            return &v[i];
    }
    return NULL;
}

/* sendmail's listeners without DAEMON_OPTIONS (proto.m4): one MTA, or MTA-v4 and MTA-v6
 * when _NETINET6_ is defined (OSTYPE(solaris8) and solaris11 define it). */
static void mc_default_daemons(struct mc_state *st, const char *main_file)
{
    struct mc_loc at = {main_file, 0};
    if (!st->netinet6) {
        st->daemons[st->n_daemons++] = (struct mc_daemon){.name = "MTA", .port = 25};
        mc_report_add(st->report, at, MC_TRANSLATED,
                      "no DAEMON_OPTIONS: sendmail's default MTA listener on port 25 -> listen");
    } else {
        st->daemons[st->n_daemons++] =
            (struct mc_daemon){.name = "MTA-v4", .family = "inet", .port = 25};
        st->daemons[st->n_daemons++] =
            (struct mc_daemon){.name = "MTA-v6", .family = "inet6", .port = 25};
        mc_report_add(st->report, at, MC_TRANSLATED,
                      "no DAEMON_OPTIONS, and _NETINET6_: sendmail's default MTA-v4 and MTA-v6 "
                      "listeners on port 25 -> listen");
    }
    for (size_t i = 0; i < st->n_daemons; i++)
        mc_save_loc(&st->daemons[i].at, at);
}

void mc_daemons_finish(struct mc_state *st, const char *main_file)
{
    struct mc_loc at = {main_file, 0};
    if (st->msp) {
        for (size_t i = 0; i < st->n_daemons; i++)
            mc_report_add(st->report, mc_saved(&st->daemons[i].at), MC_IGNORED,
                          "listener %s: sendmail never listens with a submit.cf (FEATURE(msp)); "
                          "left out",
                          st->daemons[i].name[0] ? st->daemons[i].name : "Daemon");
        return;
    }
    if (st->n_daemons == 0)
        mc_default_daemons(st, main_file);
    if (!st->no_default_msa) {
        struct mc_daemon *d = &st->daemons[st->n_daemons++];
        *d = (struct mc_daemon){.name = "MSA", .port = 587, .modifiers = "E"};
        mc_save_loc(&d->at, at);
        mc_report_add(st->report, at, MC_TRANSLATED,
                      "no FEATURE(no_default_msa): sendmail's default MSA listener on port 587 "
                      "-> listen");
    }
    size_t kept = 0, live = 0;
    for (size_t i = 0; i < st->n_daemons; i++) {
        struct mc_daemon *d = &st->daemons[i];
        const struct mc_daemon *clash = mc_clash(st->daemons, kept, d);
        if (clash) {
            mc_report_add(st->report, mc_saved(&d->at), MC_WARNING,
                          "listener %s on port %u: %s already listens there, so sendmail's "
                          "bind would fail; left out%s",
                          d->name, d->port, clash->name,
                          strcmp(d->name, "MSA") || d->at.line
                              ? ""
                              : " (add FEATURE(`no_default_msa') when the .mc defines its "
                                "own MSA)");
            continue;
        }
        st->daemons[kept] = *d;
        live += mc_listener(st, &st->daemons[kept], kept);
        kept++;
    }
    if (live == 0)
        mc_report_add(st->report, at, MC_WARNING,
                      "no listener is written live, so ringmaild opens its built-in default: "
                      "127.0.0.1 port 2525 (loopback only)");
}
