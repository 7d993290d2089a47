/* compat/mc_local.c — the local mailer: the program sendmail runs to deliver local mail.
 * FEATURE(local_procmail) and FEATURE(local_lmtp) define LOCAL_MAILER_PATH and
 * LOCAL_MAILER_ARGS (procmail's or mail.local's, or the FEATURE's arguments), and a later
 * define of either replaces that part, as in m4. The keys say what sendmail would run:
 * mailers.local_procmail or local_lmtp while the FEATURE's program stands, mailers.local_path
 * (with local_args) once the .mc names another program, such as Dovecot's LDA. */
#include <stdio.h>
#include <string.h>

#include "compat/mc_int.h"

static const struct {
    const char *feature, *key, *args; /* the FEATURE, its key, its default arguments */
} mc_local_features[] = {
    {"local_procmail", "mailers.local_procmail", "procmail -a $h -d $u"},
    {"local_lmtp", "mailers.local_lmtp", "mail.local -l"},
};
#define MC_N_LOCAL_FEATURES (sizeof(mc_local_features) / sizeof(mc_local_features[0]))

/* mailer/local.m4 writes the mailer at MAILER(local): what comes after changes nothing. */
static bool mc_local_too_late(struct mc_state *st, const char *what, struct mc_loc loc)
{
    if (!st->saw_local_mailer)
        return false;
    mc_report_add(st->report, loc, MC_WARNING,
                  "%s after MAILER(local): sendmail has already written the local mailer, so "
                  "this has no effect there either; not translated. Move it above the MAILER "
                  "lines",
                  what);
    return true;
}

void mc_local_feature(struct mc_state *st, const char *name, char **args, size_t nargs,
                      struct mc_loc loc)
{
    char what[128];
    bool replaces = mc_yaml_get(st->yaml, "mailers.local_path") != NULL;
    snprintf(what, sizeof(what), "FEATURE(%s)%s", name,
             replaces ? ", replacing the program of mailers.local_path (removed)" : "");
    if (mc_local_too_late(st, what, loc))
        return;
    for (size_t i = 0; i < MC_N_LOCAL_FEATURES; i++)
        mc_yaml_remove(st->yaml, mc_local_features[i].key);
    mc_yaml_remove(st->yaml, "mailers.local_path");
    const char *key =
        strcmp(name, "local_lmtp") ? mc_local_features[0].key : mc_local_features[1].key;
    mc_key(st, loc, what, key, nargs > 1 && *args[1] ? args[1] : "true", true);
    if (nargs > 2 && *args[2])
        mc_key(st, loc, what, "mailers.local_args", args[2], true);
    else
        mc_yaml_remove(st->yaml, "mailers.local_args");
}

/* What the program is, for the report: a name an operator recognises. */
static const char *mc_local_program(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (strcmp(base, "dovecot-lda") == 0 ||
        (strcmp(base, "deliver") == 0 && strstr(path, "dovecot")))
        return " (Dovecot's LDA: local mail goes into Dovecot's mailboxes)";
    if (strcmp(base, "sensible-mda") == 0)
        return " (Debian's sensible-mda: procmail, or the mailbox, as each user has it)";
    return "";
}

void mc_local_define(struct mc_state *st, const char *name, const char *value, struct mc_loc loc)
{
    char what[256];
    bool path = strcmp(name, "LOCAL_MAILER_PATH") == 0;
    snprintf(what, sizeof(what), "define(%s)%s", name, path ? mc_local_program(value) : "");
    if (mc_local_too_late(st, what, loc))
        return;
    if (!path) {
        mc_key(st, loc, what, "mailers.local_args", value, true);
        return;
    }
    mc_key(st, loc, what, "mailers.local_path", value, true);
    for (size_t i = 0; i < MC_N_LOCAL_FEATURES; i++) {
        if (!mc_yaml_get(st->yaml, mc_local_features[i].key))
            continue;
        /* the FEATURE's program is replaced; its arguments (and flags) stay */
        mc_yaml_remove(st->yaml, mc_local_features[i].key);
        snprintf(what, sizeof(what),
                 "define(%s) replaces the program of FEATURE(%s) (%s removed), whose arguments "
                 "stay",
                 name, mc_local_features[i].feature, mc_local_features[i].key);
        if (!mc_yaml_get(st->yaml, "mailers.local_args"))
            mc_key(st, loc, what, "mailers.local_args", mc_local_features[i].args, true);
    }
}
