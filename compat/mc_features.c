/* compat/mc_features.c — FEATURE(name, args...): every feature sendmail 8.17 ships. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat/mc_int.h"

enum mc_feat_how {
    FEAT_MAP,    /* maps.<key>: the file, from the first argument or the default */
    FEAT_FLAG,   /* <key>: true, or the first argument when one is given */
    FEAT_ARGS,   /* <key>: the list of arguments, or true */
    FEAT_CW,     /* use_cw_file */
    FEAT_NO_MSA, /* no_default_msa */
    FEAT_PAUSE,  /* greet_pause(milliseconds) */
    FEAT_NULL,   /* nullclient(host) */
    FEAT_DNSBL,  /* dnsbl / enhdnsbl(zone, message, ...) */
    FEAT_LOCAL,  /* local_procmail, local_lmtp: the local mailer (mc_local.c) */
    FEAT_MSP,    /* msp(host, MSA): the .mc is a submit.mc */
    FEAT_IGNORE, /* harmless: note says why */
    FEAT_PERSON, /* not carried over: note says why */
};

struct mc_feat {
    const char *name;
    enum mc_feat_how how;
    const char *key;  /* or the note */
    const char *dflt; /* FEAT_MAP: the default file, in MAIL_SETTINGS_DIR */
};

/* In the order of cf/README; keys under features. are kept for later but greet_pause and
 * dnsbl (mc_key_enforced). */
static const struct mc_feat mc_feats[] = {
    {"access_db", FEAT_MAP, "maps.access", "access"},
    {"virtusertable", FEAT_MAP, "maps.virtusertable", "virtusertable"},
    {"mailertable", FEAT_MAP, "maps.mailertable", "mailertable"},
    {"genericstable", FEAT_MAP, "maps.genericstable", "genericstable"},
    {"domaintable", FEAT_MAP, "maps.domaintable", "domaintable"},
    {"authinfo", FEAT_MAP, "maps.authinfo", "authinfo"},
    {"use_ct_file", FEAT_MAP, "maps.trusted_users", "trusted-users"},
    {"use_cw_file", FEAT_CW, NULL, NULL},
    {"no_default_msa", FEAT_NO_MSA, NULL, NULL},
    {"greet_pause", FEAT_PAUSE, "features.greet_pause", NULL},
    {"nullclient", FEAT_NULL, NULL, NULL},
    {"dnsbl", FEAT_DNSBL, NULL, NULL},
    {"enhdnsbl", FEAT_DNSBL, NULL, NULL},
    {"always_add_domain", FEAT_FLAG, "features.always_add_domain", NULL},
    {"blacklist_recipients", FEAT_FLAG, "features.blocklist_recipients", NULL},
    {"blocklist_recipients", FEAT_FLAG, "features.blocklist_recipients", NULL},
    {"masquerade_envelope", FEAT_FLAG, "masquerade.envelope", NULL},
    {"masquerade_entire_domain", FEAT_FLAG, "masquerade.entire_domain", NULL},
    {"allmasquerade", FEAT_FLAG, "masquerade.all_headers", NULL},
    {"limited_masquerade", FEAT_FLAG, "masquerade.limited", NULL},
    {"local_no_masquerade", FEAT_FLAG, "masquerade.not_local", NULL},
    {"generics_entire_domain", FEAT_FLAG, "masquerade.generics_entire_domain", NULL},
    {"redirect", FEAT_FLAG, "features.redirect", NULL},
    {"smrsh", FEAT_FLAG, "mailers.smrsh", NULL},
    {"local_procmail", FEAT_LOCAL, NULL, NULL},
    {"local_lmtp", FEAT_LOCAL, NULL, NULL},
    {"delay_checks", FEAT_ARGS, "features.delay_checks", NULL},
    {"conncontrol", FEAT_ARGS, "features.conncontrol", NULL},
    {"ratecontrol", FEAT_ARGS, "features.ratecontrol", NULL},
    {"accept_unresolvable_domains", FEAT_FLAG, "features.accept_unresolvable_domains", NULL},
    {"accept_unqualified_senders", FEAT_FLAG, "features.accept_unqualified_senders", NULL},
    {"relay_hosts_only", FEAT_FLAG, "features.relay_hosts_only", NULL},
    {"relay_entire_domain", FEAT_FLAG, "features.relay_entire_domain", NULL},
    {"relay_based_on_MX", FEAT_FLAG, "features.relay_based_on_mx", NULL},
    {"relay_local_from", FEAT_FLAG, "features.relay_local_from", NULL},
    {"relay_mail_from", FEAT_ARGS, "features.relay_mail_from", NULL},
    {"loose_relay_check", FEAT_FLAG, "features.loose_relay_check", NULL},
    {"block_bad_helo", FEAT_FLAG, "features.block_bad_helo", NULL},
    {"require_rdns", FEAT_FLAG, "features.require_rdns", NULL},
    {"badmx", FEAT_FLAG, "features.badmx", NULL},
    {"rhsbl", FEAT_ARGS, "features.rhsbl", NULL},
    {"nocanonify", FEAT_ARGS, "features.nocanonify", NULL},
    {"preserve_local_plus_detail", FEAT_FLAG, "features.preserve_local_plus_detail", NULL},
    {"preserve_luser_host", FEAT_FLAG, "features.preserve_luser_host", NULL},
    {"stickyhost", FEAT_FLAG, "features.stickyhost", NULL},
    {"notsticky", FEAT_FLAG, "features.notsticky", NULL},
    {"nopercenthack", FEAT_ARGS, "features.nopercenthack", NULL},
    {"lookupdotdomain", FEAT_FLAG, "features.lookupdotdomain", NULL},
    {"bestmx_is_local", FEAT_ARGS, "features.bestmx_is_local", NULL},
    {"use_client_ptr", FEAT_FLAG, "features.use_client_ptr", NULL},
    {"check_cert_altnames", FEAT_FLAG, "features.check_cert_altnames", NULL},
    {"tls_session_features", FEAT_FLAG, "features.tls_session_features", NULL},
    {"tls_failures", FEAT_FLAG, "features.tls_failures", NULL},
    {"sts", FEAT_FLAG, "features.sts", NULL},
    {"msp", FEAT_MSP, NULL, NULL},
    {"nouucp", FEAT_IGNORE, "ringmail has no UUCP; '!' in an address is never routed", NULL},
    {"uucpdomain", FEAT_PERSON, "UUCP is not supported", NULL},
    {"bitdomain", FEAT_PERSON, "BITNET is not supported", NULL},
    {"promiscuous_relay", FEAT_PERSON,
     "an open relay: not translated; list the clients that may relay in relay_from", NULL},
    {"ldap_routing", FEAT_PERSON, "LDAP routing is not supported yet", NULL},
    {"domainmap", FEAT_PERSON, "domain maps are not supported yet", NULL},
    {"prefixmod", FEAT_PERSON, "not supported", NULL},
    {"queuegroup", FEAT_PERSON, "queue groups are not supported; ringmail has one spool", NULL},
    {"compat_check", FEAT_PERSON, "sender/recipient pair checks are not supported yet", NULL},
    {"check_other", FEAT_PERSON, "custom command checks are not supported yet", NULL},
    {"drac", FEAT_PERSON, "DRAC (POP-before-SMTP) is not supported", NULL},
    {"mtamark", FEAT_PERSON, "MTA marks are not supported", NULL},
    {"bcc", FEAT_PERSON, "not supported yet", NULL},
};

/* FEATURE(msp, host, MSA): sendmail's mail submission program (submit.cf). sendmail refuses
 * to run it as a daemon ("Mail submission program cannot be used as daemon") and sends every
 * message, local or not, to the host (port 587 with MSA): msp.m4's defines follow. */
static enum mc_verdict mc_msp(struct mc_state *st, char **args, size_t nargs, struct mc_loc loc)
{
    static const char implies[] =
        "undefine(`ALIAS_FILE')define(`confPRIVACY_FLAGS', `goaway,noetrn,restrictqrun')"
        "ifdef(`confRUN_AS_USER', , `define(`confRUN_AS_USER', `smmsp')')"
        "ifdef(`MSP_QUEUE_DIR', `define(`QUEUE_DIR', MSP_QUEUE_DIR)', "
        "`define(`QUEUE_DIR', `/var/spool/clientmqueue')')";
    char host[300];
    snprintf(host, sizeof(host), "%s%s", nargs > 1 && *args[1] ? args[1] : "[localhost]",
             nargs > 2 && strcmp(args[2], "MSA") == 0 ? ":587" : "");
    st->msp = true;
    st->no_default_msa = true;
    mc_report_add(st->report, loc, MC_PERSON,
                  "FEATURE(msp): this is a submit.mc, the configuration of sendmail's mail "
                  "submission program: sendmail never listens with it and hands every message "
                  "to %s. ringmail has no separate submission program (its sendmail command "
                  "gives mail to the local ringmaild): translate the MTA's sendmail.mc for "
                  "ringmaild instead. This translation writes no listener (ringmaild then opens "
                  "its built-in default, 127.0.0.1 port 2525) and sends everything to %s",
                  host, host);
    /* msp.m4 puts the port (MSA: 587) into the relay mailer's arguments, as ringmail's
     * [host]:587 means */
    mc_key(st, loc, "FEATURE(msp)", "routing.smart_host", host, false);
    mc_key(st, loc, "FEATURE(msp)", "routing.mail_hub", host, false);
    /* msp.m4 makes the local mailer the relay to the host too */
    static const char *const local[] = {"mailers.local_path", "mailers.local_args",
                                        "mailers.local_procmail", "mailers.local_lmtp"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        if (!mc_yaml_get(st->yaml, local[i]))
            continue;
        mc_yaml_remove(st->yaml, local[i]);
        mc_report_add(st->report, loc, MC_IGNORED,
                      "FEATURE(msp): local mail goes to %s as well, so %s set before is "
                      "removed",
                      host, local[i]);
    }
    return mc_m4_push_text(st->m4, implies) < 0 ? mc_fail(st, loc, "out of memory") : MC_GO_ON;
}

static const struct mc_feat *mc_feat_find(const char *name)
{
    for (size_t i = 0; i < sizeof(mc_feats) / sizeof(mc_feats[0]); i++)
        if (strcmp(mc_feats[i].name, name) == 0)
            return &mc_feats[i];
    return NULL;
}

enum mc_verdict mc_feature(struct mc_state *st, char **args, size_t nargs, struct mc_loc loc)
{
    const char *name = nargs ? args[0] : "";
    const struct mc_feat *f = mc_feat_find(name);
    char what[160], path[1024], text[64];
    snprintf(what, sizeof(what), "FEATURE(%s)", name);
    if (!f)
        return mc_fail(st, loc, "%s: sendmail has no such feature (there is no cf/feature/%s.m4)",
                       what, name);
    if (st->saw_mailer)
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s after MAILER(): sendmail's m4 prints '*** ERROR: FEATURE() should be "
                      "before MAILER()' but still applies it, and so does this translation; "
                      "move it above the MAILER lines",
                      what);
    const char *arg1 = nargs > 1 && *args[1] ? args[1] : NULL;
    switch (f->how) {
    case FEAT_MAP:
        if (arg1) {
            mc_spec_path(arg1, path, sizeof(path));
            /* Red Hat names the database (access.db); ringmail reads the text makemap
             * builds it from, and sendmail opens access.db for either name */
            size_t n = strlen(path);
            if (n > 3 && strcmp(path + n - 3, ".db") == 0)
                path[n - 3] = '\0';
        }
        if (!arg1 || !*path)
            mc_settings_path(st, f->dflt, path, sizeof(path));
        mc_key(st, loc, what, f->key, path, true);
        break;
    case FEAT_FLAG:
        mc_key(st, loc, what, f->key, arg1 ? arg1 : "true", true);
        break;
    case FEAT_ARGS:
        if (nargs < 2) {
            mc_key(st, loc, what, f->key, "true", true);
            break;
        }
        mc_yaml_remove(st->yaml, f->key);
        for (size_t i = 1; i < nargs; i++)
            mc_yaml_add(st->yaml, f->key, args[i], !mc_key_live(f->key), NULL);
        mc_report_add(st->report, loc, mc_key_kind(!mc_key_live(f->key)), "%s -> %s", what, f->key);
        break;
    case FEAT_CW:
        st->use_cw_file = true;
        mc_save_loc(&st->cw_at, loc);
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "%s -> maps.local_host_names (see the end of the report)", what);
        break;
    case FEAT_NO_MSA:
        st->no_default_msa = true;
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "%s: no default submission listener on port 587", what);
        break;
    case FEAT_PAUSE: {
        bool clean;
        uint64_t ms = mc_atoi(arg1 ? arg1 : "0", &clean);
        if (ms % 1000)
            snprintf(text, sizeof(text), "%llums", (unsigned long long)ms);
        else
            mc_format_duration(ms / 1000, text, sizeof(text));
        mc_key(st, loc, what, f->key, text, true);
        break;
    }
    case FEAT_NULL: {
        /* nullclient.m4 sends everything to the hub and makes all mail look as if it
         * came from there: the same keys its defines and FEATUREs would set */
        const char *hub = arg1 ? arg1 : "localhost";
        st->alias_file_set = true; /* nullclient.m4: undefine(`ALIAS_FILE') */
        mc_relay_host(st, loc, what, "routing.smart_host", hub);
        mc_relay_host(st, loc, what, "routing.mail_hub", hub);
        if (mc_domain_ok(hub))
            mc_key(st, loc, what, "masquerade.as", hub, true);
        else
            mc_report_add(st->report, loc, MC_PERSON,
                          "%s: sendmail masquerades as '%s', which is not a domain ringmail "
                          "accepts in masquerade.as; not carried over",
                          what, hub);
        mc_key(st, loc, what, "masquerade.all_headers", "true", true);
        mc_key(st, loc, what, "masquerade.envelope", "true", true);
        mc_key_add(st, loc, what, "mailers.enabled", "local", true);
        mc_key_add(st, loc, what, "mailers.enabled", "smtp", true);
        mc_key(st, loc, what, "features.nullclient", "true", true);
        break;
    }
    case FEAT_DNSBL: {
        struct mc_yaml *item = mc_yaml_add_map(st->yaml, "features.dnsbl", false);
        if (item) {
            mc_yaml_set(item, "zone", arg1 ? arg1 : "blackholes.mail-abuse.org", false, NULL);
            bool action = nargs > 2 &&
                          (strcmp(args[2], "quarantine") == 0 || strcmp(args[2], "discard") == 0);
            if (action)
                mc_report_add(st->report, loc, MC_PERSON,
                              "%s: '%s' is not supported: a listed client is refused at connect",
                              what, args[2]);
            else if (nargs > 2 && *args[2])
                mc_yaml_set(item, "message", args[2], false, NULL);
            if (nargs > 3 && strcmp(args[3], "t") == 0) /* a failed lookup refuses (451) */
                mc_yaml_set(item, "tempfail", "true", false, NULL);
            if (strcmp(name, "enhdnsbl") == 0 && nargs > 4)
                for (size_t i = 4; i < nargs; i++)
                    mc_yaml_add(item, "results", args[i], false, NULL);
        }
        mc_report_add(st->report, loc, MC_TRANSLATED, "%s -> features.dnsbl[] zone %s", what,
                      arg1 ? arg1 : "blackholes.mail-abuse.org");
        break;
    }
    case FEAT_LOCAL:
        mc_local_feature(st, name, args, nargs, loc);
        break;
    case FEAT_MSP:
        return mc_msp(st, args, nargs, loc);
    case FEAT_IGNORE:
        mc_report_add(st->report, loc, MC_IGNORED, "%s: %s", what, f->key);
        break;
    case FEAT_PERSON:
        mc_report_add(st->report, loc, MC_PERSON, "%s: %s", what, f->key);
        break;
    }
    return MC_GO_ON;
}
