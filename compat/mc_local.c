/* compat/mc_local.c — local delivery: the local mailer (LOCAL_MAILER_PATH/ARGS,
 * FEATURE(local_procmail/local_lmtp), confLOCAL_MAILER with MAILER(cyrusv2)), the default
 * user, the aliases, the forward path and LUSER_RELAY.
 *
 * FEATURE(local_procmail) and FEATURE(local_lmtp) define LOCAL_MAILER_PATH and
 * LOCAL_MAILER_ARGS (procmail's or mail.local's, or the FEATURE's arguments), and a later
 * define of either replaces that part, as in m4. The keys say what sendmail would run:
 * mailers.local_procmail (with the arguments procmail gets) while the FEATURE's program
 * stands, mailers.local_path (with local_args) once the .mc names another program, such as
 * Dovecot's LDA. FEATURE(local_lmtp) runs its program speaking LMTP over a pipe, which
 * ringmail does not do: mail.local (its default) only writes /var/mail/$u, which ringmail's
 * own mailer does the same way, so that is the translation, with a report line saying what
 * differs; another program stays mailers.local_lmtp, a key kept for later, and needs a
 * person. */
#include <stdio.h>
#include <string.h>

#include "compat/mc_int.h"

/* local_procmail.m4's program without PROCMAIL_MAILER_PATH, and its arguments. */
#define MC_PROCMAIL_PATH "/usr/local/bin/procmail"
#define MC_PROCMAIL_ARGS "procmail -a $h -d $u"
/* cyrusv2.m4's CYRUSV2_MAILER_ARGS (sendmail-cf 8.17 as Debian ships it). */
#define MC_CYRUSV2_ARGS "FILE /var/run/cyrus/socket/lmtp"

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

/* mailers.local_args from sendmail's LOCAL_MAILER_ARGS. Of its macros ringmail expands $u,
 * $h and $f; $g, the sender as the mailer sees it (the envelope sender for the local mailer),
 * is written as $f; others are named in a warning. */
static void mc_local_args(struct mc_state *st, const char *what, const char *value,
                          struct mc_loc loc)
{
    char unknown[256] = "";
    size_t u = 0;
    struct buf args, *out = &args;
    buf_init(&args, 0);
    for (const char *p = value; *p;) {
        size_t n = p[0] == '$' && p[1]
                       ? (p[1] == '{' ? strcspn(p, "}") + (p[strcspn(p, "}")] != 0) : 2)
                       : 1;
        if (n == 2 && strchr("uhfg", p[1]))
            buf_printf(out, "$%c", p[1] == 'g' ? 'f' : p[1]);
        else
            buf_printf(out, "%.*s", (int)n, p);
        if (n > 1 && !strchr("uhfg", p[1]) && u + n + 3 < sizeof(unknown))
            u += (size_t)snprintf(unknown + u, sizeof(unknown) - u, "%s%.*s", u ? ", " : "", (int)n,
                                  p);
        p += n;
    }
    if (u)
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s: ringmail's local mailer expands $u (login), $h (+detail) and $f "
                      "(sender) in its arguments, not %s: the program gets them as written",
                      what, unknown);
    mc_key(st, loc, what, "mailers.local_args", args.data ? args.data : "", false);
    buf_free(&args);
}

/* The program FEATURE(local_lmtp) speaks LMTP to (NULL: local_lmtp.m4's mail.local). */
static void mc_local_lmtp(struct mc_state *st, const char *what, const char *program,
                          struct mc_loc loc)
{
    const char *base = program && strrchr(program, '/') ? strrchr(program, '/') + 1 : program;
    mc_yaml_remove(st->yaml, "mailers.local_lmtp");
    if (!program || strcmp(base, "mail.local") == 0) {
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "%s -> ringmail's own mailer (mailers.local_path unset) writes the mbox "
                      "%s -l wrote, /var/mail/$u (mailers.mailbox), with the same From_ line, "
                      ">From quoting and Return-Path. What differs: sendmail ran %s as root and "
                      "spoke LMTP to it on a pipe, one process for the message's local "
                      "recipients and a reply for each; ringmail runs one agent per recipient, "
                      "as that user, and does not convert 7-bit MIME back to 8 bits (F=9)",
                      what, program ? program : "mail.local", program ? program : "mail.local");
        return;
    }
    mc_key(st, loc, what, "mailers.local_lmtp", program, true);
    mc_report_add(st->report, loc, MC_PERSON,
                  "%s: sendmail speaks LMTP over a pipe to %s, which ringmail does not do; "
                  "until it does, local mail goes to ringmail's own mailer (mailers.mailbox). "
                  "Give the LMTP server's socket to mailers.lmtp (Dovecot's lmtp, Cyrus's "
                  "lmtpd), or run the program in its one-recipient mode as mailers.local_path",
                  what, program);
}

void mc_local_feature(struct mc_state *st, const char *name, char **args, size_t nargs,
                      struct mc_loc loc)
{
    char what[128];
    bool lmtp = strcmp(name, "local_lmtp") == 0;
    bool replaces = mc_yaml_get(st->yaml, "mailers.local_path") != NULL;
    snprintf(what, sizeof(what), "FEATURE(%s)%s", name,
             replaces ? ", replacing the program of mailers.local_path (removed)" : "");
    if (mc_local_too_late(st, what, loc))
        return;
    static const char *const keys[] = {"mailers.local_procmail", "mailers.local_lmtp",
                                       "mailers.local_path", "mailers.local_args"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        mc_yaml_remove(st->yaml, keys[i]);
    const char *program = nargs > 1 && *args[1] ? args[1] : NULL;
    const char *argv = nargs > 2 && *args[2] ? args[2] : NULL;
    st->local_lmtp = lmtp;
    if (lmtp) {
        mc_local_lmtp(st, what, program, loc);
        if (argv)
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: its arguments `%s' are not carried over: ringmail does not run "
                          "the program",
                          what, argv);
        return;
    }
    /* written out: ringmail's own procmail defaults (/usr/bin/procmail, -Y) are not the m4's */
    if (!program)
        program = st->procmail_path[0] ? st->procmail_path : MC_PROCMAIL_PATH;
    mc_key(st, loc, what, "mailers.local_procmail", program, false);
    mc_local_args(st, what, argv ? argv : MC_PROCMAIL_ARGS, loc);
}

static void mc_local_mailer_define(struct mc_state *st, const char *name, const char *value,
                                   struct mc_loc loc)
{
    char what[256];
    bool path = strcmp(name, "LOCAL_MAILER_PATH") == 0;
    snprintf(what, sizeof(what), "define(%s)%s", name, path ? mc_local_program(value) : "");
    if (mc_local_too_late(st, what, loc))
        return;
    if (st->local_lmtp) {
        /* FEATURE(local_lmtp)'s flags stay: sendmail speaks LMTP to this program too */
        if (path)
            mc_local_lmtp(st,
                          "define(LOCAL_MAILER_PATH): the program FEATURE(local_lmtp) speaks "
                          "LMTP to",
                          value, loc);
        else
            mc_report_add(st->report, loc, MC_WARNING,
                          "%s: the arguments of FEATURE(local_lmtp)'s mailer are not carried "
                          "over: ringmail does not run the program",
                          what);
        return;
    }
    if (!path) {
        mc_local_args(st, what, value, loc);
        return;
    }
    if (mc_yaml_get(st->yaml, "mailers.local_procmail")) {
        /* the FEATURE's program is replaced; its arguments (and flags) stay */
        mc_yaml_remove(st->yaml, "mailers.local_procmail");
        snprintf(what, sizeof(what),
                 "define(%s)%s replaces the program of FEATURE(local_procmail) "
                 "(mailers.local_procmail removed), whose arguments stay in mailers.local_args",
                 name, mc_local_program(value));
    }
    mc_key(st, loc, what, "mailers.local_path", value, false);
}

/* confDEF_USER_ID: user, user:group, uid or uid:gid as sendmail reads them. */
static void mc_default_user(struct mc_state *st, const char *what, const char *value,
                            struct mc_loc loc)
{
    size_t n = strcspn(value, ":");
    if (!*value || (n == 4 && strncmp(value, "root", 4) == 0) || (n == 1 && value[0] == '0')) {
        mc_yaml_remove(st->yaml, "mailers.default_user");
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = '%s': ringmail never delivers as root; not carried over (the "
                      "default, daemon, applies): name an unprivileged user",
                      what, value);
        return;
    }
    mc_key(st, loc, what, "mailers.default_user", value, false);
}

/* ALIAS_FILE: a list of alias databases; ringmail reads the text files behind the file
 * ones (hash:/etc/mail/aliases is /etc/mail/aliases, as newaliases builds its .db). */
static void mc_alias_files(struct mc_state *st, const char *what, const char *value,
                           struct mc_loc loc)
{
    char word[1024];
    size_t n = 0;
    mc_yaml_remove(st->yaml, "maps.aliases"); /* a later define replaces the whole list */
    for (const char *p = value; mc_next_word(&p, word, sizeof(word));) {
        const char *colon = strchr(word, ':');
        const char *file = word[0] != '/' && colon ? colon + 1 : word;
        bool type_ok = file == word || strncmp(word, "hash:", 5) == 0 ||
                       strncmp(word, "btree:", 6) == 0 || strncmp(word, "dbm:", 4) == 0 ||
                       strncmp(word, "text:", 5) == 0;
        if (file[0] != '/' || !type_ok) {
            mc_report_add(st->report, loc, MC_PERSON,
                          "%s: '%s' is no alias file (NIS, LDAP or another database, or a "
                          "relative path); ringmail reads aliases files only: not carried over",
                          what, word);
            continue;
        }
        mc_key_add(st, loc, what, "maps.aliases", file, false);
        n++;
    }
    if (!n && !*value)
        mc_report_add(st->report, loc, MC_TRANSLATED, "%s is empty: no aliases file", what);
}

/* confFORWARD_PATH: sendmail's ForwardPath, files separated by ':', with macros; the files
 * whose macros ringmail expands ($z home, $u login) are carried over. */
static void mc_forward_path(struct mc_state *st, const char *what, const char *value,
                            struct mc_loc loc)
{
    char item[1024];
    struct buf left;
    buf_init(&left, 0);
    mc_yaml_remove(st->yaml, "mailers.forward_path");
    for (const char *p = value; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(item, sizeof(item), "%.*s", (int)n, p);
        p += n + (p[n] == ':');
        const char *m = strchr(item, '$');
        while (m && (m[1] == 'z' || m[1] == 'u'))
            m = strchr(m + 1, '$');
        if (m)
            buf_printf(&left, "%s'%s'", left.len ? ", " : "", item);
        else if (item[0])
            mc_key_add(st, loc, what, "mailers.forward_path", item, false);
    }
    if (left.len)
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s: %s left out: ringmail expands $z (home) and $u (login) in "
                      "mailers.forward_path, no other macro",
                      what, left.data);
    buf_free(&left);
    if (!mc_yaml_get(st->yaml, "mailers.forward_path"))
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = '%s': no forward file ringmail can read is left; ringmail then "
                      "reads $z/.forward (its default). Write mailers.forward_path yourself",
                      what, value);
}

/* LUSER_RELAY, sendmail's $L: where local names that are no user or alias go, as its
 * MailerToTriple ruleset reads it: local:user (that local user; CanonLocal drops a host after
 * it), error:..., mailer:user@host (that address), mailer:host or host (the name sent on to
 * that host as name@host, or as it came with FEATURE(preserve_luser_host), which is
 * features.preserve_luser_host). routing.luser_relay takes local:user, user@domain,
 * mailer:host and host with the same meanings (compat/alias_expand.h). */
static void mc_luser_relay(struct mc_state *st, const char *what, const char *value,
                           struct mc_loc loc)
{
    static const char *const smtp_mailers[] = {"smtp", "esmtp", "smtp8", "dsmtp", "relay"};
    char out[512], mailer[64] = "";
    const char *rest = value;
    size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    if (n && n < sizeof(mailer) && value[n] == ':') {
        snprintf(mailer, sizeof(mailer), "%.*s", (int)n, value);
        rest = value + n + 1;
    }
    mc_yaml_remove(st->yaml, "routing.luser_relay");
    if (!*value) {
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "%s is empty: unknown local names get 550 5.1.1 User unknown, as without "
                      "it",
                      what);
        return;
    }
    if (strcmp(mailer, "local") == 0) {
        int user = (int)strcspn(rest, "@");
        if (!user) {
            mc_report_add(st->report, loc, MC_IGNORED,
                          "%s = %s: sendmail hands unknown names to the local mailer as they "
                          "are, which refuses them; ringmail refuses them at RCPT (550 5.1.1 "
                          "User unknown)",
                          what, value);
            return;
        }
        snprintf(out, sizeof(out), "local:%.*s", user, rest);
        if (rest[user])
            mc_report_add(st->report, loc, MC_IGNORED,
                          "%s = %s: sendmail ignores the host after a local user", what, value);
        mc_key(st, loc, what, "routing.luser_relay", out, false);
        return;
    }
    if (strcmp(mailer, "error") == 0) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = %s: sendmail accepts unknown names and then answers with this "
                      "error; ringmail refuses them at RCPT with 550 5.1.1 User unknown: not "
                      "carried over",
                      what, value);
        return;
    }
    size_t m = 0;
    while (mailer[0] && m < sizeof(smtp_mailers) / sizeof(smtp_mailers[0]) &&
           strcmp(smtp_mailers[m], mailer) != 0)
        m++;
    if (mailer[0] && m == sizeof(smtp_mailers) / sizeof(smtp_mailers[0])) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = %s: the %s mailer; ringmail sends unknown names on by SMTP only: "
                      "not carried over",
                      what, value, mailer);
        return;
    }
    if (!*rest || strpbrk(rest, " \t,")) {
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = '%s': not one host or address; not carried over", what, value);
        return;
    }
    if (strchr(rest, '@') && !mailer[0])
        mc_report_add(st->report, loc, MC_WARNING,
                      "%s = %s: sendmail reads a value without a mailer as a host name, '%s' "
                      "too, and cannot reach it; carried over as the address it names (sendmail "
                      "needs smtp:%s for that)",
                      what, value, rest, rest);
    /* mailer:user@host is that address; mailer:host stays, as a mailertable value */
    mc_key(st, loc, what, "routing.luser_relay", strchr(rest, '@') ? rest : value, false);
}

/* confLOCAL_MAILER: the mailer of local names; cyrusv2 (Cyrus's LMTP socket) is carried
 * over as mailers.lmtp at the end, once MAILER(cyrusv2) and its arguments are known. */
static void mc_local_mailer_name(struct mc_state *st, const char *what, const char *value,
                                 struct mc_loc loc)
{
    snprintf(st->local_mailer, sizeof(st->local_mailer), "%s", value);
    mc_save_loc(&st->local_mailer_at, loc);
    if (strcmp(value, "local") == 0)
        mc_report_add(st->report, loc, MC_IGNORED, "%s: the local mailer, sendmail's default",
                      what);
    else if (strcmp(value, "cyrusv2") == 0)
        mc_report_add(st->report, loc, MC_TRANSLATED,
                      "%s: local mail goes to Cyrus over LMTP (see MAILER(cyrusv2) at the end of "
                      "the report)",
                      what);
    else
        mc_report_add(st->report, loc, MC_PERSON,
                      "%s = %s: ringmail delivers local mail with its mailbox writer, a local "
                      "program (mailers.local_path) or LMTP (mailers.lmtp); not carried over",
                      what, value);
}

void mc_local_define(struct mc_state *st, const char *name, const char *value, struct mc_loc loc)
{
    char what[128];
    snprintf(what, sizeof(what), "define(%s)", name);
    if (!strcmp(name, "LOCAL_MAILER_PATH") || !strcmp(name, "LOCAL_MAILER_ARGS"))
        mc_local_mailer_define(st, name, value, loc);
    else if (!strcmp(name, "confDEF_USER_ID"))
        mc_default_user(st, what, value, loc);
    else if (!strcmp(name, "ALIAS_FILE"))
        mc_alias_files(st, what, value, loc);
    else if (!strcmp(name, "confFORWARD_PATH"))
        mc_forward_path(st, what, value, loc);
    else if (!strcmp(name, "LUSER_RELAY"))
        mc_luser_relay(st, what, value, loc);
    else if (!strcmp(name, "confLOCAL_MAILER"))
        mc_local_mailer_name(st, what, value, loc);
    else if (!strcmp(name, "PROCMAIL_MAILER_PATH")) {
        snprintf(st->procmail_path, sizeof(st->procmail_path), "%s", value);
        mc_report_add(st->report, loc, MC_IGNORED,
                      "%s: procmail's path, which FEATURE(local_procmail) after it runs", what);
    } else { /* CYRUSV2_MAILER_ARGS */
        snprintf(st->cyrus_args, sizeof(st->cyrus_args), "%s", value);
        mc_report_add(st->report, loc, MC_IGNORED,
                      "%s: Cyrus's LMTP socket, for MAILER(cyrusv2) after it", what);
    }
}

bool mc_local_undefine(struct mc_state *st, const char *name)
{
    if (!strcmp(name, "PROCMAIL_MAILER_PATH"))
        st->procmail_path[0] = '\0';
    else if (!strcmp(name, "CYRUSV2_MAILER_ARGS"))
        st->cyrus_args[0] = '\0';
    else if (!strcmp(name, "confLOCAL_MAILER"))
        st->local_mailer[0] = '\0';
    else
        return false;
    return true;
}

void mc_local_cyrusv2(struct mc_state *st, struct mc_loc loc)
{
    snprintf(st->cyrus_socket, sizeof(st->cyrus_socket), "%s",
             st->cyrus_args[0] ? st->cyrus_args : MC_CYRUSV2_ARGS);
    mc_save_loc(&st->cyrusv2_at, loc);
}

/* The LMTP server of CYRUSV2_MAILER_ARGS: `FILE /path' (a unix socket), `TCP host port'. */
static bool mc_cyrus_lmtp(const char *args, char *out, size_t outlen)
{
    char words[3][256] = {"", "", ""}, extra[8];
    const char *p = args;
    size_t n = 0;
    while (n < 3 && mc_next_word(&p, words[n], sizeof(words[n])))
        n++;
    if (mc_next_word(&p, extra, sizeof(extra)))
        return false;
    if (n == 2 && strcmp(words[0], "FILE") == 0 && words[1][0] == '/')
        snprintf(out, outlen, "unix:%s", words[1]);
    else if (n >= 2 && strcmp(words[0], "TCP") == 0 && words[1][0] != '$')
        snprintf(out, outlen, "inet:%s:%s", words[1], n == 3 ? words[2] : "25");
    else
        return false;
    return true;
}

void mc_local_finish(struct mc_state *st)
{
    char lmtp[600];
    if (strcmp(st->local_mailer, "cyrusv2") != 0) {
        if (st->cyrus_socket[0])
            mc_report_add(st->report, mc_saved(&st->cyrusv2_at), MC_IGNORED,
                          "MAILER(cyrusv2): local mail still goes to the local mailer "
                          "(confLOCAL_MAILER is not cyrusv2), so mailers.lmtp is not set; a "
                          "mailertable entry cyrusv2:... is written lmtp:unix:/path in ringmail");
        return;
    }
    struct mc_loc at = mc_saved(&st->local_mailer_at);
    if (!st->cyrus_socket[0]) {
        mc_report_add(st->report, at, MC_PERSON,
                      "define(confLOCAL_MAILER) = cyrusv2 without MAILER(cyrusv2): sendmail has "
                      "no such mailer then; not carried over");
        return;
    }
    if (!mc_cyrus_lmtp(st->cyrus_socket, lmtp, sizeof(lmtp))) {
        mc_report_add(st->report, mc_saved(&st->cyrusv2_at), MC_PERSON,
                      "MAILER(cyrusv2) with CYRUSV2_MAILER_ARGS `%s': not `FILE /path' nor `TCP "
                      "host port'; not carried over",
                      st->cyrus_socket);
        return;
    }
    mc_key(st, mc_saved(&st->cyrusv2_at), "MAILER(cyrusv2) as confLOCAL_MAILER", "mailers.lmtp",
           lmtp, false);
    static const char *const unused[] = {"mailers.local_path", "mailers.local_procmail",
                                         "mailers.local_lmtp"};
    for (size_t i = 0; i < sizeof(unused) / sizeof(unused[0]); i++)
        if (mc_yaml_get(st->yaml, unused[i]))
            mc_report_add(st->report, at, MC_WARNING,
                          "%s is set, but local mail goes to Cyrus over LMTP (mailers.lmtp), "
                          "in sendmail as in ringmail: the local mailer is not used for it",
                          unused[i]);
}
