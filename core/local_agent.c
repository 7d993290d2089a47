#include "core/local_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat/map_aliases.h"
#include "core/local_forward.h"
#include "core/privsep.h"
#include "delivery/mailbox.h"
#include "delivery/pipe.h"
#include "util/log.h"

/* smrsh refuses these in a command line, 8-bit variants included (smrsh.c's SPECIALS). */
#define LOCAL_AGENT_SMRSH_SPECIALS "<|>^();&`$\r\n"

int local_agent_getpwnam(void *arg, const char *login, struct local_agent_user *u)
{
    (void)arg;
    errno = 0;
    const struct passwd *pw = getpwnam(login);
    if (!pw)
        return -1;
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    if ((size_t)snprintf(u->login, sizeof(u->login), "%s", pw->pw_name) >= sizeof(u->login) ||
        (size_t)snprintf(u->home, sizeof(u->home), "%s", pw->pw_dir ? pw->pw_dir : "/") >=
            sizeof(u->home) ||
        (size_t)snprintf(u->shell, sizeof(u->shell), "%s", pw->pw_shell ? pw->pw_shell : "") >=
            sizeof(u->shell)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* "$u" and friends: `vars` pairs a letter with its value ("$$" is a dollar). -1 when the
 * result does not fit, or when `required` names a letter whose value is empty (a forward
 * path with $h for a recipient without a +detail is skipped, as sendmail does). */
struct local_var {
    char name;
    const char *value;
    bool required;
};

static int local_expand(const char *tmpl, const struct local_var *vars, size_t n_vars, char *out,
                        size_t size)
{
    size_t len = 0;
    for (const char *p = tmpl; *p; p++) {
        const char *v = NULL;
        char one[2] = {*p, '\0'};
        if (*p != '$') {
            v = one;
        } else if (p[1] == '$') {
            v = "$";
            p++;
        } else {
            for (size_t i = 0; p[1] && i < n_vars; i++)
                if (vars[i].name == p[1]) {
                    if (vars[i].required && !vars[i].value[0])
                        return -1;
                    v = vars[i].value;
                    p++;
                    break;
                }
            if (!v)
                v = one;
        }
        size_t vl = strlen(v);
        if (len + vl >= size)
            return -1;
        memcpy(out + len, v, vl);
        len += vl;
    }
    out[len] = '\0';
    return 0;
}

static bool local_terminated(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

/* A request field is one line of text: no CR, LF (they would end the mbox "From " line
 * or a header the mailer writes). */
static bool local_field_ok(const char *field, size_t size)
{
    return local_terminated(field, size) && !strpbrk(field, "\r\n");
}

/* A login or +detail goes into paths ($u in the mailbox, $h in the forward path): neither
 * may climb out of the directory the configuration names. */
static bool local_path_word_ok(const char *w)
{
    return !strchr(w, '/') && w[0] != '.' && w[0] != '-';
}

/* mailers.default_user: "login", "login:group", "uid:gid" (sendmail's DefaultUser). */
static int local_default_user(const struct local_agent_ctx *ctx, struct local_agent_user *u,
                              struct local_reply *r)
{
    const char *spec = ctx->cfg->local.default_user ? ctx->cfg->local.default_user : "daemon";
    char name[64];
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (nl == 0 || nl >= sizeof(name)) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", "local",
                        "mailers.default_user \"%s\" is not a user", spec);
        return -1;
    }
    memcpy(name, spec, nl);
    name[nl] = '\0';
    char *end;
    unsigned long num = strtoul(name, &end, 10);
    memset(u, 0, sizeof(*u));
    if (*end == '\0') {
        u->uid = (uid_t)num;
        u->gid = (gid_t)num;
        snprintf(u->login, sizeof(u->login), "%s", name);
        snprintf(u->home, sizeof(u->home), "/");
    } else if (ctx->getpw(ctx->getpw_arg, name, u) < 0) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", "local",
                        "mailers.default_user \"%s\": no such user", spec);
        return -1;
    }
    if (colon) {
        num = strtoul(colon + 1, &end, 10);
        const struct group *gr = *end ? getgrnam(colon + 1) : NULL;
        if (colon[1] && !*end)
            u->gid = (gid_t)num;
        else if (gr)
            u->gid = gr->gr_gid;
        else {
            local_reply_set(r, LOCAL_DEFERRED, "4.3.0", "local",
                            "mailers.default_user \"%s\": no such group", spec);
            return -1;
        }
    }
    return 0;
}

/* Whose mailbox and .forward (`login`; NULL: an alias's target, run as default_user), and
 * whom the agent becomes: the same user, or default_user for root. */
static int local_identity(const struct local_agent_ctx *ctx, const char *login,
                          struct local_agent_plan *plan, struct local_reply *r)
{
    if (login) {
        errno = 0;
        int found = login[0] && local_path_word_ok(login)
                        ? ctx->getpw(ctx->getpw_arg, login, &plan->rcpt)
                        : (errno = 0, -1);
        if (found < 0 && errno != 0 && errno != ENOENT && errno != ESRCH) {
            local_reply_set(r, LOCAL_DEFERRED, "4.3.0", "local", "cannot look up user %s: %s",
                            login, strerror(errno));
            return -1;
        }
        if (found < 0) {
            local_reply_set(r, LOCAL_FAILED, "5.1.1", "local", "%s... User unknown", login);
            return -1;
        }
        plan->as = plan->rcpt;
    }
    if (!login || plan->as.uid == 0) {
        if (local_default_user(ctx, &plan->as, r) < 0)
            return -1;
        if (!login)
            plan->rcpt = plan->as;
    }
    if (plan->as.uid == 0) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", "local",
                        "mailers.default_user must not be root: nothing runs as uid 0");
        return -1;
    }
    if (ctx->self != 0 && plan->as.uid != ctx->self) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", "local",
                        "cannot deliver as %s (uid %ld): ringmaild does not run as root",
                        plan->as.login, (long)plan->as.uid);
        return -1;
    }
    plan->change_identity = ctx->self == 0;
    return 0;
}

/* In the aliases the parent read, or in an :include: file they name (read by the parent
 * too, a list as a .forward is). */
static bool local_in_aliases(const struct config *cfg, enum local_op op, const char *target)
{
    enum alias_kind kind = op == LOCAL_OP_PROGRAM ? ALIAS_PROGRAM : ALIAS_FILE;
    for (size_t m = 0; m < cfg->map.n_aliases; m++) {
        const struct alias_map *am = &cfg->map.aliases[m];
        for (size_t i = 0; i < am->n; i++)
            for (size_t j = 0; j < am->v[i].n_targets; j++)
                if (am->v[i].targets[j].kind == kind &&
                    strcmp(am->v[i].targets[j].value, target) == 0)
                    return true;
    }
    for (size_t i = 0; i < cfg->map.n_includes; i++) {
        const struct config_include *inc = &cfg->map.includes[i];
        if (inc->err == 0 && inc->text &&
            local_agent_forward_names(inc->text, inc->len, op, target))
            return true;
    }
    return false;
}

static int local_add_arg(struct local_agent_plan *plan, size_t *used, const char *arg)
{
    size_t n = strlen(arg) + 1;
    if (plan->argc >= LOCAL_AGENT_ARGC_MAX || *used + n > sizeof(plan->args))
        return -1;
    memcpy(plan->args + *used, arg, n);
    *used += n;
    plan->argc++;
    return 0;
}

/* sendmail's program mailer is "/bin/sh -c cmd"; with FEATURE(smrsh) the command's first
 * word (after an "exec ") must be a program in smrsh_dir, and runs from there. */
static int local_program(const struct config *cfg, const char *cmd, struct local_agent_plan *plan,
                         struct local_reply *r)
{
    char rewritten[sizeof(((struct local_request *)0)->target) + PATH_MAX];
    const char *run = cmd;
    const char *dir = cfg->local.smrsh_dir;
    if (dir) {
        for (const char *p = cmd; *p; p++)
            if (strchr(LOCAL_AGENT_SMRSH_SPECIALS, *p & 0x7f)) {
                local_reply_set(r, LOCAL_FAILED, "5.7.1", "prog", "smrsh: cannot use %c in command",
                                *p & 0x7f);
                return -1;
            }
        const char *word = cmd + strspn(cmd, " \t");
        if (strncmp(word, "exec", 4) == 0 && (word[4] == ' ' || word[4] == '\t'))
            word += 4 + strspn(word + 4, " \t");
        size_t wl = strcspn(word, " \t");
        const char *base = word;
        for (const char *p = word; p < word + wl; p++)
            if (*p == '/')
                base = p + 1;
        int bl = (int)(word + wl - base);
        struct stat st;
        if (bl == 0 ||
            (size_t)snprintf(rewritten, sizeof(rewritten), "%s/%.*s", dir, bl, base) >=
                sizeof(rewritten) ||
            stat(rewritten, &st) < 0 || !S_ISREG(st.st_mode)) {
            local_reply_set(r, LOCAL_FAILED, "5.7.1", "prog",
                            "smrsh: \"%.*s\" not available for sendmail programs", bl ? bl : 1,
                            bl ? base : "?");
            return -1;
        }
        size_t len = strlen(rewritten);
        snprintf(rewritten + len, sizeof(rewritten) - len, "%s", word + wl);
        run = rewritten;
    }
    size_t used = 0;
    if (local_add_arg(plan, &used, "/bin/sh") < 0 || local_add_arg(plan, &used, "-c") < 0 ||
        local_add_arg(plan, &used, run) < 0) {
        local_reply_set(r, LOCAL_FAILED, "5.3.0", "prog", "command too long");
        return -1;
    }
    plan->mailer = LOCAL_AGENT_PROGRAM;
    snprintf(plan->mailer_name, sizeof(plan->mailer_name), "prog");
    plan->from_line = true; /* sendmail's prog mailer: flags without n and P */
    plan->return_path = false;
    return 0;
}

/* LOCAL_MAILER_PATH/ARGS: the mailbox through a program, argv words with $u $h $f
 * (sendmail's local mailer flags include n and P: no From_ line, a Return-Path). */
static int local_mailer_program(const struct config *cfg, const struct local_request *rq,
                                struct local_agent_plan *plan, struct local_reply *r)
{
    const char *base = strrchr(cfg->local.local_path, '/');
    base = base ? base + 1 : cfg->local.local_path;
    snprintf(plan->mailer_name, sizeof(plan->mailer_name), "%s", base);
    const char *args = cfg->local.local_args ? cfg->local.local_args : base;
    const struct local_var vars[] = {{'u', plan->rcpt.login, false},
                                     {'h', rq->detail, false},
                                     {'f', rq->sender[0] ? rq->sender : "MAILER-DAEMON", false}};
    size_t used = 0;
    bool first = true;
    for (const char *p = args; *p;) {
        p += strspn(p, " \t");
        size_t wl = strcspn(p, " \t");
        if (!wl)
            break;
        char word[1024], arg[2048];
        if (wl >= sizeof(word) ||
            (memcpy(word, p, wl), word[wl] = '\0',
             local_expand(word, vars, sizeof(vars) / sizeof(vars[0]), arg, sizeof(arg)) < 0) ||
            local_add_arg(plan, &used, first ? cfg->local.local_path : arg) < 0) {
            local_reply_set(r, LOCAL_FAILED, "5.3.0", plan->mailer_name,
                            "mailers.local_args too long");
            return -1;
        }
        first = false;
        p += wl;
    }
    if (first && local_add_arg(plan, &used, cfg->local.local_path) < 0) {
        local_reply_set(r, LOCAL_FAILED, "5.3.0", plan->mailer_name, "mailers.local_path too long");
        return -1;
    }
    plan->mailer = LOCAL_AGENT_PROGRAM;
    plan->from_line = false;
    plan->return_path = true;
    return 0;
}

/* The mailbox: mailers.mailbox with $u, under the home when relative, a Maildir when it
 * ends in '/'. A mail spool the user cannot create files in (Debian's /var/mail, 2775
 * root:mail) is written with its group added, as mail.local's setgid mail does: the agent
 * runs no program of the user's then. */
static int local_mailbox(const struct config *cfg, const struct local_request *rq,
                         struct local_agent_plan *plan, struct local_reply *r)
{
    if (cfg->local.local_path)
        return local_mailer_program(cfg, rq, plan, r);
    const char *tmpl = cfg->local.mailbox ? cfg->local.mailbox : "/var/mail/$u";
    const struct local_var vars[] = {{'u', plan->rcpt.login, false}};
    char box[PATH_MAX];
    if (local_expand(tmpl, vars, 1, box, sizeof(box)) < 0 ||
        (box[0] != '/' && (size_t)snprintf(plan->path, sizeof(plan->path), "%s/%s", plan->rcpt.home,
                                           box) >= sizeof(plan->path))) {
        local_reply_set(r, LOCAL_FAILED, "5.3.0", "local", "mailbox path too long");
        return -1;
    }
    if (box[0] == '/')
        snprintf(plan->path, sizeof(plan->path), "%s", box);
    size_t len = strlen(plan->path);
    plan->mailer = plan->path[len - 1] == '/' ? LOCAL_AGENT_MAILDIR : LOCAL_AGENT_MBOX;
    snprintf(plan->mailer_name, sizeof(plan->mailer_name), "local");
    char *slash = strrchr(plan->path, '/');
    struct stat st;
    if (plan->mailer == LOCAL_AGENT_MBOX && box[0] == '/' && slash > plan->path) {
        *slash = '\0';
        if (stat(plan->path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & S_IWGRP) &&
            !(st.st_mode & S_IWOTH) && st.st_gid != 0)
            plan->extra_gid = st.st_gid;
        *slash = '/';
    }
    return 0;
}

static bool local_shell_ok(const char *shell)
{
    if (!shell[0])
        return true; /* an empty shell is /bin/sh, which /etc/shells always has */
    bool ok = false;
    setusershell();
    for (const char *s; !ok && (s = getusershell());)
        ok = strcmp(s, shell) == 0;
    endusershell();
    return ok;
}

int local_agent_check(const struct local_agent_ctx *ctx, const struct local_request *rq,
                      struct local_agent_plan *plan, struct local_reply *refusal)
{
    const struct config *cfg = ctx->cfg;
    memset(plan, 0, sizeof(*plan));
    plan->extra_gid = (gid_t)-1;
    bool alias = rq->flags & LOCAL_F_ALIAS;
    if (rq->version != LOCAL_PROTO_VERSION || rq->op < LOCAL_OP_MAILBOX || rq->op > LOCAL_OP_FILE ||
        (rq->flags & ~(LOCAL_F_NO_FORWARD | LOCAL_F_ALIAS)) ||
        (alias && rq->op == LOCAL_OP_MAILBOX) || !local_terminated(rq->qid, sizeof(rq->qid)) ||
        !local_field_ok(rq->user, sizeof(rq->user)) ||
        !local_field_ok(rq->detail, sizeof(rq->detail)) ||
        !local_field_ok(rq->sender, sizeof(rq->sender)) ||
        !local_field_ok(rq->recipient, sizeof(rq->recipient)) ||
        !local_field_ok(rq->target, sizeof(rq->target))) {
        local_reply_set(refusal, LOCAL_FAILED, "5.3.0", "local", "malformed local request");
        return -1;
    }
    if (rq->detail[0] && !local_path_word_ok(rq->detail)) {
        local_reply_set(refusal, LOCAL_FAILED, "5.1.1", "local", "%s+%s... User unknown", rq->user,
                        rq->detail);
        return -1;
    }
    plan->timeout_s = cfg->local.timeout_ms ? (cfg->local.timeout_ms + 999) / 1000 : 600;
    if (rq->op == LOCAL_OP_MAILBOX) {
        if (rq->target[0]) {
            local_reply_set(refusal, LOCAL_FAILED, "5.3.0", "local",
                            "malformed local request: a mailbox has no target");
            return -1;
        }
        if (local_identity(ctx, rq->user, plan, refusal) < 0)
            return -1;
        plan->read_forward = !(rq->flags & LOCAL_F_NO_FORWARD);
        return local_mailbox(cfg, rq, plan, refusal);
    }
    const char *mailer = rq->op == LOCAL_OP_PROGRAM ? "prog" : "file";
    if (!rq->target[0] || (rq->op == LOCAL_OP_FILE && rq->target[0] != '/')) {
        local_reply_set(refusal, LOCAL_FAILED, "5.3.0", mailer, "%s: not an absolute path",
                        rq->target);
        return -1;
    }
    if (alias && !local_in_aliases(cfg, (enum local_op)rq->op, rq->target)) {
        local_reply_set(refusal, LOCAL_FAILED, "5.7.1", mailer, "%s%s: not in the aliases",
                        rq->op == LOCAL_OP_PROGRAM ? "|" : "", rq->target);
        return -1;
    }
    if (local_identity(ctx, alias ? NULL : rq->user, plan, refusal) < 0)
        return -1;
    if (!alias && !local_shell_ok(plan->rcpt.shell)) {
        local_reply_set(refusal, LOCAL_FAILED, "5.7.1", mailer, "User %s has an unsafe shell %s",
                        plan->rcpt.login, plan->rcpt.shell);
        return -1;
    }
    plan->forward_must_name = !alias;
    if (rq->op == LOCAL_OP_PROGRAM)
        return local_program(cfg, rq->target, plan, refusal);
    plan->mailer = LOCAL_AGENT_FILE;
    snprintf(plan->mailer_name, sizeof(plan->mailer_name), "file");
    snprintf(plan->path, sizeof(plan->path), "%s", rq->target);
    return 0;
}

bool local_agent_forward_names(const char *text, size_t len, enum local_op op, const char *target)
{
    /* The reader the engine expanded the list with (compat/alias_expand.h), so a target
     * matches exactly what the engine could have asked for. */
    struct alias_list list = {0};
    enum alias_kind kind = op == LOCAL_OP_PROGRAM ? ALIAS_PROGRAM : ALIAS_FILE;
    bool found = false;
    if (aliases_parse_targets(".forward", text, len, &list) == 0)
        for (size_t i = 0; !found && i < list.n; i++)
            found = list.v[i].kind == kind && strcmp(list.v[i].value, target) == 0;
    alias_list_free(&list);
    return found;
}

int local_agent_read_forward(const struct config *cfg, const struct local_agent_plan *plan,
                             const struct local_request *rq, char *text, size_t size)
{
    const struct local_var vars[] = {{'z', plan->rcpt.home, false},
                                     {'u', plan->rcpt.login, false},
                                     {'h', rq->detail, true},
                                     {'w', cfg->hostname ? cfg->hostname : "", false}};
    for (size_t i = 0; i < cfg->local.n_forward_path; i++) {
        char path[PATH_MAX];
        if (local_expand(cfg->local.forward_path[i], vars, sizeof(vars) / sizeof(vars[0]), path,
                         sizeof(path)) < 0 ||
            path[0] != '/')
            continue;
        struct stat st, fst;
        if (lstat(path, &st) < 0) {
            if (errno != ENOENT && errno != ENOTDIR)
                log_info("%s: forward %s not followed: %s", rq->qid, path, strerror(errno));
            continue;
        }
        const char *why = local_forward_unsafe(path, &st, true, plan->rcpt.uid);
        if (why) {
            log_info("%s: forward %s not followed: %s", rq->qid, path, why);
            continue;
        }
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &fst) < 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
            log_info("%s: forward %s not followed: %s", rq->qid, path,
                     fd < 0 ? strerror(errno) : "replaced while opened");
            if (fd >= 0)
                close(fd);
            continue;
        }
        size_t len = 0;
        ssize_t got = 1;
        while (len < size && (got = read(fd, text + len, size - len)) != 0)
            if (got > 0)
                len += (size_t)got;
            else if (errno != EINTR)
                break;
        close(fd);
        if (got < 0 || len >= size) {
            log_info("%s: forward %s not followed: %s", rq->qid, path,
                     got < 0 ? strerror(errno) : "too large");
            return -1;
        }
        text[len] = '\0';
        if (!local_forward_add_includes(rq->qid, text, &len, size))
            continue;
        return 1;
    }
    return 0;
}

/* The agent becomes plan->as and checks that root is gone for good. */
static int local_become(const struct local_agent_plan *plan, struct local_reply *r)
{
    if (plan->change_identity) {
        gid_t groups[256];
        int n = (int)(sizeof(groups) / sizeof(groups[0])) - 1;
        if (getgrouplist(plan->as.login, plan->as.gid, groups, &n) < 0) {
            groups[0] = plan->as.gid;
            n = 1;
        }
        if (plan->extra_gid != (gid_t)-1)
            groups[n++] = plan->extra_gid;
        if (setgroups((size_t)n, groups) < 0 || setgid(plan->as.gid) < 0 ||
            setuid(plan->as.uid) < 0) {
            local_reply_set(r, LOCAL_DEFERRED, "4.3.0", plan->mailer_name, "cannot become %s: %s",
                            plan->as.login, strerror(errno));
            return -1;
        }
    }
    if (getuid() != plan->as.uid || geteuid() != plan->as.uid || getuid() == 0 ||
        (plan->change_identity && (getgid() != plan->as.gid || getegid() != plan->as.gid)) ||
        setuid(0) == 0) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", plan->mailer_name,
                        "the agent is not %s: refusing to deliver", plan->as.login);
        return -1;
    }
    return 0;
}

static bool local_forward_blank(const char *text)
{
    for (const char *l = text; *l;) {
        size_t skip = strspn(l, " \t\r\n");
        if (l[skip] && l[skip] != '#')
            return false;
        const char *eol = strchr(l + skip, '\n');
        if (!eol)
            break;
        l = eol + 1;
    }
    return true;
}

static void local_deliver(const struct config *cfg, const struct local_request *rq,
                          const struct local_agent_plan *plan, int df, struct local_reply *r)
{
    struct mailbox_msg msg = {.fd = df,
                              .data_offset = rq->data_offset,
                              .sender = rq->sender,
                              .arrival = rq->arrival,
                              .timeout_s = plan->timeout_s,
                              .hostname = cfg->hostname};
    switch (plan->mailer) {
    case LOCAL_AGENT_MBOX:
        mailbox_mbox(plan->path, &msg, r);
        break;
    case LOCAL_AGENT_MAILDIR:
        mailbox_maildir(plan->path, &msg, r);
        break;
    case LOCAL_AGENT_FILE:
        mailbox_file(plan->path, &msg, r);
        break;
    case LOCAL_AGENT_PROGRAM: {
        const char *argv[LOCAL_AGENT_ARGC_MAX + 1];
        const char *a = plan->args;
        for (size_t i = 0; i < plan->argc; i++, a += strlen(a) + 1)
            argv[i] = a;
        argv[plan->argc] = NULL;
        char home[PATH_MAX + 8], user[80], logname[80], shell[272];
        snprintf(home, sizeof(home), "HOME=%s", plan->as.home);
        snprintf(user, sizeof(user), "USER=%s", plan->as.login);
        snprintf(logname, sizeof(logname), "LOGNAME=%s", plan->as.login);
        snprintf(shell, sizeof(shell), "SHELL=%s", plan->as.shell[0] ? plan->as.shell : "/bin/sh");
        const char *env[] = {home, user, logname, shell, "PATH=/usr/bin:/bin", NULL};
        struct stat st;
        struct pipe_job job = {
            .argv = argv,
            .env = env,
            .dir = stat(plan->as.home, &st) == 0 && S_ISDIR(st.st_mode) ? plan->as.home : "/",
            .from_line = plan->from_line,
            .return_path = plan->return_path,
            .timeout_s = plan->timeout_s};
        pipe_deliver(&job, &msg, r);
        break;
    }
    }
    if (!r->mailer[0])
        snprintf(r->mailer, sizeof(r->mailer), "%s", plan->mailer_name);
}

/* Whom an agent has become: an agent serves only requests whose plan has the same. */
struct local_identity {
    uid_t uid;
    gid_t gid, extra_gid;
    bool change;
    char login[64];
};

static void local_identity_of(const struct local_agent_plan *plan, struct local_identity *id)
{
    memset(id, 0, sizeof(*id));
    id->uid = plan->as.uid;
    id->gid = plan->as.gid;
    id->extra_gid = plan->extra_gid;
    id->change = plan->change_identity;
    memcpy(id->login, plan->as.login, sizeof(id->login));
}

static bool local_identity_eq(const struct local_identity *a, const struct local_identity *b)
{
    return a->uid == b->uid && a->gid == b->gid && a->extra_gid == b->extra_gid &&
           a->change == b->change && strcmp(a->login, b->login) == 0;
}

/* What the parent sends an agent for one delivery, with the df and the reply socket. */
struct local_agent_job {
    struct local_request rq;
    struct local_agent_plan plan;
};

/* One delivery by an agent that has become plan->as: the .forward first, then the mailer. */
static void local_agent_one(const struct config *cfg, const struct local_request *rq,
                            const struct local_agent_plan *plan, int df, struct local_reply *r)
{
    static char forward[LOCAL_FORWARD_MAX];
    int got = 0;
    if (chdir(plan->as.home) < 0 && chdir("/") < 0)
        log_warn("%s: chdir: %s", rq->qid, strerror(errno));
    if (plan->read_forward || plan->forward_must_name)
        got = local_agent_read_forward(cfg, plan, rq, forward, sizeof(forward));
    if (got < 0)
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", plan->mailer_name,
                        "the .forward of %s cannot be used", plan->rcpt.login);
    else if (plan->forward_must_name &&
             (got == 0 || !local_agent_forward_names(forward, strlen(forward),
                                                     (enum local_op)rq->op, rq->target)))
        local_reply_set(r, LOCAL_FAILED, "5.7.1", plan->mailer_name,
                        "%s%s: not in the .forward of %s", rq->op == LOCAL_OP_PROGRAM ? "|" : "",
                        rq->target, plan->rcpt.login);
    else if (plan->read_forward && got > 0 && !local_forward_blank(forward)) {
        local_reply_set(r, LOCAL_FORWARD, "2.0.0", plan->mailer_name, "forwarded");
        memcpy(r->forward, forward, sizeof(r->forward));
    } else
        local_deliver(cfg, rq, plan, df, r);
}

/* The agent: a child of the parent that becomes `first`'s identity once and then serves
 * jobs from `ctl` (one struct local_agent_job with the df and the reply socket each): one
 * reply per job on its reply socket, then one byte on `ctl` to say it is free. It ends when
 * the parent closes `ctl`. Never as root: a job for another identity is refused. */
static _Noreturn void local_agent_run(const struct config *cfg,
                                      const struct local_agent_plan *first, int ctl,
                                      unsigned log_targets)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_IGN); /* a mailbox over RLIMIT_FSIZE fails its write instead */
    umask(077);               /* what the mailers create is the user's alone */
    setsid();
    /* syslog's socket is one of the descriptors closed below: closed through log.c and
     * opened again after, or syslog(3) would reconnect over a descriptor of a job. */
    log_close();
    /* Only `ctl` is kept (close-on-exec): a program the agent runs must not reach it nor
     * any other agent's; each job's df and reply socket arrive close-on-exec too. */
    if (dup3(ctl, 3, O_CLOEXEC) < 0)
        _exit(1);
    ctl = 3;
    close_range(4, ~0u, 0);
    log_configure(NULL, log_targets);

    struct local_identity self;
    local_identity_of(first, &self);
    static struct local_reply became;
    bool ok = local_become(first, &became) == 0;
    static struct local_agent_job job;
    static struct local_reply r;
    for (;;) {
        int fds[PRIVSEP_MAX_FDS];
        size_t nfds = 0;
        ssize_t n = privsep_recv_payload(ctl, &job, sizeof(job), fds, &nfds, 0);
        if (n != (ssize_t)sizeof(job) || nfds != 2) {
            for (size_t i = 0; i < nfds; i++)
                close(fds[i]);
            _exit(n == 0 ? 0 : 1); /* end of file: the parent has retired this agent */
        }
        /* Past every time limit of the mailers (a lock, a program and its SIGKILL): a
         * stuck agent dies, and the engine defers on the closed reply socket. */
        alarm(job.plan.timeout_s * 2 + 60);
        struct local_identity want;
        local_identity_of(&job.plan, &want);
        if (!ok)
            r = became;
        else if (!local_identity_eq(&want, &self) || setuid(0) == 0)
            local_reply_set(&r, LOCAL_DEFERRED, "4.3.0", job.plan.mailer_name,
                            "the agent is not %s: refusing to deliver", job.plan.as.login);
        else {
            memset(&r, 0, sizeof(r));
            local_agent_one(cfg, &job.rq, &job.plan, fds[0], &r);
        }
        r.has_ids = 1;
        r.uid = (uint32_t)getuid();
        r.gid = (uint32_t)getgid();
        if (r.status != LOCAL_DELIVERED && r.status != LOCAL_FORWARD)
            log_info("%s: to=<%s>, mailer=%s, local agent: %s %s", job.rq.qid, job.rq.recipient,
                     r.mailer, r.enh, r.text);
        ssize_t sent;
        do
            sent = send(fds[1], &r, sizeof(r), MSG_NOSIGNAL);
        while (sent < 0 && errno == EINTR);
        close(fds[0]);
        close(fds[1]); /* the engine's end of file if the reply did not go */
        alarm(0);
        const char free_again = 1;
        if (sent != (ssize_t)sizeof(r) || !ok || send(ctl, &free_again, 1, MSG_NOSIGNAL) != 1)
            _exit(sent == (ssize_t)sizeof(r) ? 0 : 1);
    }
}

/* An agent stays this long without a job, and serves at most this many (Postfix's
 * max_idle and max_use): what a mailer might leak stays bounded, and a user's agent does
 * not outlive a burst by much. */
#define LOCAL_AGENT_IDLE_MS 5000
#define LOCAL_AGENT_USES    100
/* Agents busy for one identity at once (Postfix's local_destination_concurrency_limit):
 * the others for that user wait in the parent. */
#define LOCAL_AGENT_PER_USER 2
/* Requests waiting in the parent for an agent: at most this many, and at most what half
 * the descriptors the parent may open (RLIMIT_NOFILE) less LOCAL_AGENTS_FDS_RESERVED hold,
 * as each keeps two (the df and the reply socket): past that recvmsg would drop a
 * request's descriptors (EMFILE). Beyond it the parent stops reading the engine's socket
 * and the engine keeps its requests until there is room (delivery/local.h): only a flood
 * far past mailers.max_agents reaches it. */
#define LOCAL_AGENTS_WAITING_MAX  10000
#define LOCAL_AGENTS_FDS_RESERVED 64
#define LOCAL_AGENTS_FULL_LOG_MS  60000
static struct log_limit local_agents_full_log = LOG_LIMIT_INIT(LOCAL_AGENTS_FULL_LOG_MS);

struct local_slot {
    pid_t pid;
    int ctl; /* the parent's end; -1 once retired (the agent ends on end of file) */
    bool busy;
    unsigned uses, gen;
    int64_t idle_since; /* ms, CLOCK_MONOTONIC */
    struct local_identity id;
};

/* A request checked and waiting: its plan (15 kB) is worked out again when an agent takes
 * it (local_dispatch_one), so that a full queue costs the parent little memory. */
struct local_waiting {
    struct local_waiting *next;
    int fds[2]; /* df, reply */
    struct local_identity id;
    struct local_request rq;
};

struct local_agents {
    struct local_slot *slots; /* every agent process not reaped yet */
    size_t n, cap;
    unsigned retiring; /* slots whose ctl is closed, not reaped yet */
    struct local_waiting *head, **tail;
    size_t n_waiting, waiting_max; /* waiting_max: LOCAL_AGENTS_WAITING_MAX or the fds' */
    const struct config *cfg;
    unsigned gen; /* of cfg: an agent of an older configuration serves no more jobs */
    int ep;       /* epoll: every slot's ctl */
    unsigned log_targets;
};

static int64_t local_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct local_agents *local_agents_new(unsigned log_targets)
{
    struct local_agents *la = calloc(1, sizeof(*la));
    if (!la)
        return NULL;
    la->log_targets = log_targets;
    la->tail = &la->head;
    la->waiting_max = LOCAL_AGENTS_WAITING_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < 2 * LOCAL_AGENTS_WAITING_MAX + LOCAL_AGENTS_FDS_RESERVED)
        la->waiting_max = rl.rlim_cur > 2 + LOCAL_AGENTS_FDS_RESERVED
                              ? (rl.rlim_cur - LOCAL_AGENTS_FDS_RESERVED) / 2
                              : 1;
    if ((la->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        free(la);
        return NULL;
    }
    return la;
}

static void local_waiting_drop(struct local_waiting *w)
{
    close(w->fds[0]);
    close(w->fds[1]); /* the engine defers the request: 4.3.0 */
    free(w);
}

void local_agents_free(struct local_agents *la)
{
    if (!la)
        return;
    for (size_t i = 0; i < la->n; i++)
        if (la->slots[i].ctl >= 0)
            close(la->slots[i].ctl);
    /* The idle ones end at once on their end of file: gone when the daemon is (a user may
     * be removed right after), where a busy one finishes its delivery first. */
    for (size_t i = 0; i < la->n; i++)
        while (!la->slots[i].busy && waitpid(la->slots[i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
    while (la->head) {
        struct local_waiting *w = la->head;
        la->head = w->next;
        local_waiting_drop(w);
    }
    close(la->ep);
    free(la->slots);
    free(la);
}

unsigned local_agents_running(const struct local_agents *la)
{
    return (unsigned)la->n;
}

int local_agents_fd(const struct local_agents *la)
{
    return la->ep;
}

/* The agents' control sockets count against the descriptors too (one each). */
bool local_agents_accepting(const struct local_agents *la)
{
    return la->n_waiting + la->n / 2 < la->waiting_max;
}

/* The agent ends once it has read what is queued on its ctl (end of file). */
static void local_slot_retire(struct local_agents *la, struct local_slot *s)
{
    if (s->ctl < 0)
        return;
    epoll_ctl(la->ep, EPOLL_CTL_DEL, s->ctl, NULL);
    close(s->ctl);
    s->ctl = -1;
    la->retiring++;
}

void local_agents_configure(struct local_agents *la, const struct config *cfg)
{
    la->cfg = cfg;
    la->gen++;
    for (size_t i = 0; i < la->n; i++)
        if (!la->slots[i].busy)
            local_slot_retire(la, &la->slots[i]);
}

/* Forks an agent for `plan`'s identity: its slot, or NULL (errno). */
static struct local_slot *local_slot_start(struct local_agents *la,
                                           const struct local_agent_plan *plan)
{
    if (la->n == la->cap) {
        size_t cap = la->cap * 2 + 8;
        struct local_slot *slots = reallocarray(la->slots, cap, sizeof(*slots));
        if (!slots)
            return NULL;
        la->slots = slots;
        la->cap = cap;
    }
    int sv[2];
    if (privsep_pair(sv) < 0)
        return NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sv[0]};
    if (epoll_ctl(la->ep, EPOLL_CTL_ADD, sv[0], &ev) < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        errno = e;
        return NULL;
    }
    pid_t pid = fork();
    if (pid == 0)
        local_agent_run(la->cfg, plan, sv[1], la->log_targets);
    int e = errno;
    close(sv[1]);
    if (pid < 0) {
        epoll_ctl(la->ep, EPOLL_CTL_DEL, sv[0], NULL);
        close(sv[0]);
        errno = e;
        return NULL;
    }
    struct local_slot *s = &la->slots[la->n++];
    *s = (struct local_slot){.pid = pid, .ctl = sv[0], .gen = la->gen};
    local_identity_of(plan, &s->id);
    return s;
}

static void local_answer(int reply, const struct local_request *rq, const struct local_reply *r)
{
    if (send(reply, r, sizeof(*r), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(*r))
        log_warn("%s: cannot answer the engine's local request: %s", rq->qid, strerror(errno));
}

/* Checks `rq` and works out its plan into `job`: true, or false once its refusal has been
 * logged and answered on `reply`. */
static bool local_plan(struct local_agents *la, const struct local_request *rq, int reply,
                       struct local_agent_job *job)
{
    static struct local_reply refusal;
    struct local_agent_ctx ctx = {.cfg = la->cfg, .getpw = local_agent_getpwnam, .self = getuid()};
    job->rq = *rq;
    if (local_agent_check(&ctx, &job->rq, &job->plan, &refusal) == 0)
        return true;
    job->rq.recipient[sizeof(job->rq.recipient) - 1] = '\0';
    log_info("%s: to=<%s>, local delivery refused: %s %s", rq->qid, job->rq.recipient, refusal.enh,
             refusal.text);
    local_answer(reply, rq, &refusal);
    return false;
}

/* The engine no longer waits for this request's reply: it gave up (its limit of
 * mailers.timeout plus a margin passed while the request waited here) and deferred the
 * recipient, or it is stopping. Delivering it now would deliver it twice, once more at the
 * retry. */
static bool local_waiting_abandoned(const struct local_waiting *w)
{
    struct pollfd p = {.fd = w->fds[1], .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* Hands `w` to an idle agent of its identity or a new one: 1 when it has gone (or was
 * answered, or dropped), 0 when it must wait; `blocked` counts the waits at
 * mailers.max_agents. */
static int local_dispatch_one(struct local_agents *la, struct local_waiting *w, unsigned *blocked)
{
    static struct local_agent_job job;
    unsigned busy = 0, max = la->cfg->local.max_agents ? la->cfg->local.max_agents : 100;
    struct local_slot *idle = NULL, *other = NULL;
    for (size_t i = 0; i < la->n; i++) {
        struct local_slot *s = &la->slots[i];
        bool same = local_identity_eq(&s->id, &w->id);
        if (same && s->busy)
            busy++;
        else if (s->ctl >= 0 && !s->busy && same && s->gen == la->gen)
            idle = idle ? idle : s;
        else if (s->ctl >= 0 && !s->busy)
            other = other ? other : s;
    }
    if (busy >= LOCAL_AGENT_PER_USER)
        return 0;
    if (!idle && la->n >= max) {
        /* Room for a new identity: an idle agent of another one goes (one per wait). */
        if (++*blocked > la->retiring && other)
            local_slot_retire(la, other);
        return 0;
    }
    /* Only a request that could go now is looked at (a system call each): the whole queue
     * is walked on every event, and a poll for each entry made a flood of 6,000 take 41-46 s
     * to deliver instead of 6.5 s (tests/integration/test_local_flood.py). */
    if (local_waiting_abandoned(w)) {
        log_info("%s: to=<%.512s>, local delivery dropped: the engine stopped waiting for it "
                 "(deferred, tried again later)",
                 w->rq.qid, w->rq.recipient);
        return 1;
    }
    /* Checked again: the user database may have changed while it waited. */
    if (!local_plan(la, &w->rq, w->fds[1], &job))
        return 1;
    if (!idle && !(idle = local_slot_start(la, &job.plan))) {
        static struct local_reply r;
        local_reply_set(&r, LOCAL_DEFERRED, "4.3.0", job.plan.mailer_name,
                        "cannot start a local delivery agent: %s", strerror(errno));
        log_error("%s: %s", w->rq.qid, r.text);
        local_answer(w->fds[1], &w->rq, &r);
        return 1;
    }
    if (privsep_send_payload(idle->ctl, &job, sizeof(job), w->fds, 2) < 0) {
        /* The agent has gone (its end of file and SIGCHLD follow): another one will do. */
        local_slot_retire(la, idle);
        return local_dispatch_one(la, w, blocked);
    }
    idle->busy = true;
    return 1;
}

/* Starts what may start now, in the order the requests came. */
static void local_dispatch(struct local_agents *la)
{
    unsigned blocked = 0;
    for (struct local_waiting **pw = &la->head; *pw;) {
        struct local_waiting *w = *pw;
        if (!local_dispatch_one(la, w, &blocked)) {
            pw = &w->next;
            continue;
        }
        *pw = w->next;
        if (la->tail == &w->next)
            la->tail = pw;
        la->n_waiting--;
        close(w->fds[0]);
        close(w->fds[1]);
        free(w);
    }
}

/* One request from the engine: refused at once, or queued for an agent. */
static void local_agents_take(struct local_agents *la, const struct local_request *rq,
                              const int fds[2])
{
    static struct local_agent_job job; /* only its identity is kept while it waits */
    struct local_waiting *w = NULL;
    if (local_plan(la, rq, fds[1], &job) && !(w = malloc(sizeof(*w)))) {
        static struct local_reply r;
        local_reply_set(&r, LOCAL_DEFERRED, "4.3.0", "local", "out of memory");
        log_error("%s: local delivery: out of memory", rq->qid);
        local_answer(fds[1], rq, &r);
    }
    if (!w) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    w->rq = *rq;
    w->fds[0] = fds[0];
    w->fds[1] = fds[1];
    local_identity_of(&job.plan, &w->id);
    w->next = NULL;
    *la->tail = w;
    la->tail = &w->next;
    la->n_waiting++;
}

int local_agents_serve(struct local_agents *la, int sock)
{
    static struct local_request rq;
    /* A burst is read at once (bounded, so the parent's other duties come round). */
    for (int k = 0; k < 64 && local_agents_accepting(la); k++) {
        int fds[PRIVSEP_MAX_FDS];
        size_t nfds = 0;
        ssize_t n = privsep_recv_payload(sock, &rq, sizeof(rq), fds, &nfds, MSG_DONTWAIT);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("local delivery request: %s: ignored", strerror(errno));
            break;
        }
        struct stat df_st, reply_st;
        if (n != (ssize_t)sizeof(rq) || nfds != 2 || fstat(fds[0], &df_st) < 0 ||
            !S_ISREG(df_st.st_mode) || fstat(fds[1], &reply_st) < 0 ||
            !S_ISSOCK(reply_st.st_mode)) {
            log_warn("malformed local delivery request (%zd bytes, %zu descriptors): ignored", n,
                     nfds);
            for (size_t i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        rq.qid[sizeof(rq.qid) - 1] = '\0'; /* for the log lines, before it is checked */
        local_agents_take(la, &rq, fds);
    }
    if (!local_agents_accepting(la))
        log_limited(&local_agents_full_log, LOG_LVL_INFO, NULL,
                    "local delivery: %zu requests wait for an agent, all the parent holds: the "
                    "engine keeps the others until there is room",
                    la->n_waiting);
    local_dispatch(la);
    return 0;
}

static struct local_slot *local_slot_by_ctl(struct local_agents *la, int ctl)
{
    for (size_t i = 0; i < la->n; i++)
        if (la->slots[i].ctl == ctl)
            return &la->slots[i];
    return NULL;
}

void local_agents_events(struct local_agents *la)
{
    struct epoll_event evs[64];
    int n = epoll_wait(la->ep, evs, 64, 0);
    int64_t now = local_now_ms();
    for (int i = 0; i < n; i++) {
        struct local_slot *s = local_slot_by_ctl(la, evs[i].data.fd);
        if (!s)
            continue;
        char b;
        ssize_t got = recv(s->ctl, &b, 1, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        s->busy = false;
        s->idle_since = now;
        if (got != 1 || ++s->uses >= LOCAL_AGENT_USES || s->gen != la->gen)
            local_slot_retire(la, s); /* gone (SIGCHLD follows), worn out or out of date */
    }
    local_dispatch(la);
}

int local_agents_tick(struct local_agents *la)
{
    int64_t now = local_now_ms(), next = -1;
    for (size_t i = 0; i < la->n; i++) {
        struct local_slot *s = &la->slots[i];
        if (s->ctl < 0 || s->busy)
            continue;
        int64_t left = s->idle_since + LOCAL_AGENT_IDLE_MS - now;
        if (left <= 0)
            local_slot_retire(la, s);
        else if (next < 0 || left < next)
            next = left;
    }
    return (int)next;
}

bool local_agents_reaped(struct local_agents *la, pid_t pid, int wstatus)
{
    for (size_t i = 0; i < la->n; i++) {
        struct local_slot *s = &la->slots[i];
        if (s->pid != pid)
            continue;
        if (s->ctl >= 0) {
            epoll_ctl(la->ep, EPOLL_CTL_DEL, s->ctl, NULL);
            close(s->ctl);
        } else {
            la->retiring--;
        }
        *s = la->slots[--la->n];
        if (WIFSIGNALED(wstatus))
            log_info("local delivery agent %ld killed by signal %d", (long)pid, WTERMSIG(wstatus));
        else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0)
            log_info("local delivery agent %ld could not reply (status %d)", (long)pid,
                     WEXITSTATUS(wstatus));
        local_dispatch(la);
        return true;
    }
    return false;
}
