#include "core/submission.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define SUBMISSION_NAME_MAX 64

/* The group's id: 1 found, 0 no such group, -1 on a lookup error (errno). */
static int submission_group(const char *name, gid_t *gid)
{
    char buf[4096];
    struct group gr, *found = NULL;
    int rc = getgrnam_r(name, &gr, buf, sizeof(buf), &found);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    if (!found)
        return 0;
    *gid = gr.gr_gid;
    return 1;
}

int submission_maildrop_prepare(const struct config *cfg, bool root, uid_t owner, char *err,
                                size_t errlen)
{
    const char *dir = cfg->maildrop;
    if (mkdir(dir, root ? 01700 : 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "submission.maildrop %s: mkdir: %s", dir, strerror(errno));
        return -1;
    }
    if (!root)
        return 0;
    gid_t gid = 0;
    int found = submission_group(cfg->maildrop_group, &gid);
    if (found < 0) {
        snprintf(err, errlen, "submission.maildrop_group %s: %s", cfg->maildrop_group,
                 strerror(errno));
        return -1;
    }
    mode_t mode = found ? 01730 : 01733;
    /* Through a descriptor opened without following links: the path is set, its owner
     * and mode are ours to enforce, and a link planted there must not redirect them. */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchown(fd, owner, gid) < 0 || fchmod(fd, mode) < 0) {
        snprintf(err, errlen, "submission.maildrop %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (!found)
        log_warn("submission.maildrop_group %s does not exist: %s is world-writable (mode 1733); "
                 "create the group (groupadd %s) so only ringmail-postdrop may write there",
                 cfg->maildrop_group, dir, cfg->maildrop_group);
    return 0;
}

static bool submission_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > SUBMISSION_NAME_MAX || name[0] == '.')
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

/* The maildrop directory open, and whether `name` in it is a regular file owned by `uid`
 * (any owner with `any_owner`): 1 yes, 0 no (logged unless it is missing), -1 the directory
 * cannot be opened (logged). */
static int submission_find(const struct config *cfg, const char *name, bool any_owner, uid_t uid,
                           int *dir)
{
    struct stat st;
    *dir = -1;
    if (!submission_name_valid(name)) {
        log_warn("maildrop file name '%s' is not one ringmail-postdrop makes: left alone", name);
        return 0;
    }
    if ((*dir = open(cfg->maildrop, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        log_error("maildrop %s: %s", cfg->maildrop, strerror(errno));
        return -1;
    }
    if (fstatat(*dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            log_error("maildrop %s/%s: %s", cfg->maildrop, name, strerror(errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode) || (!any_owner && st.st_uid != uid)) {
        log_warn("maildrop %s/%s: not a file of uid %u: left alone", cfg->maildrop, name,
                 (unsigned)uid);
        return 0;
    }
    return 1;
}

bool submission_maildrop_owned(const struct config *cfg, const char *name, uid_t uid)
{
    int dir;
    int found = submission_find(cfg, name, false, uid, &dir);
    if (dir >= 0)
        close(dir);
    return found == 1;
}

static void submission_remove(const struct config *cfg, const char *name, bool any_owner, uid_t uid)
{
    int dir;
    if (submission_find(cfg, name, any_owner, uid, &dir) == 1) {
        if (unlinkat(dir, name, 0) < 0)
            log_error("maildrop %s/%s: cannot remove it: %s", cfg->maildrop, name, strerror(errno));
        else if (fsync(dir) < 0)
            log_error("maildrop %s: fsync: %s", cfg->maildrop, strerror(errno));
    }
    if (dir >= 0)
        close(dir);
}

void submission_maildrop_remove(const struct config *cfg, const char *name, uid_t uid)
{
    submission_remove(cfg, name, false, uid);
}

void submission_recovered_maildrop(const struct config *cfg, const char *name)
{
    submission_remove(cfg, name, true, 0);
}

/* The caller's group (SO_PEERCRED's) or, for a known user, any group it belongs to. */
static bool submission_in_trusted_group(const struct config *cfg, const char *user, gid_t gid)
{
    gid_t groups[256];
    int n = (int)(sizeof(groups) / sizeof(groups[0]));
    if (!user || getgrouplist(user, gid, groups, &n) < 0) {
        groups[0] = gid; /* more groups than fit: the caller's own still counts */
        n = 1;
    }
    for (size_t i = 0; i < cfg->n_trusted_groups; i++) {
        char buf[4096];
        struct group gr, *found = NULL;
        if (getgrnam_r(cfg->trusted_groups[i], &gr, buf, sizeof(buf), &found) != 0 || !found)
            continue;
        for (int j = 0; j < n; j++)
            if (groups[j] == found->gr_gid)
                return true;
    }
    return false;
}

void submission_caller_init(const struct config *cfg, uid_t uid, gid_t gid, pid_t pid,
                            struct submission_caller *c)
{
    memset(c, 0, sizeof(*c));
    c->uid = uid;
    c->gid = gid;
    c->pid = pid;
    char buf[4096];
    struct passwd pw, *found = NULL;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found) {
        snprintf(c->user, sizeof(c->user), "%s", pw.pw_name);
        if (pw.pw_gecos)
            snprintf(c->fullname, sizeof(c->fullname), "%.*s", (int)strcspn(pw.pw_gecos, ","),
                     pw.pw_gecos);
    } else {
        snprintf(c->user, sizeof(c->user), "%u", (unsigned)uid);
    }
    c->trusted = uid == 0 || strcmp(c->user, cfg->run_as) == 0;
    for (size_t i = 0; !c->trusted && i < cfg->n_trusted_users; i++)
        c->trusted = strcmp(c->user, cfg->trusted_users[i]) == 0;
    if (!c->trusted && cfg->n_trusted_groups)
        c->trusted = submission_in_trusted_group(cfg, found ? pw.pw_name : NULL, gid);
}

bool submission_own_sender(const struct config *cfg, const struct submission_caller *c,
                           const char *sender)
{
    const char *at = sender ? strrchr(sender, '@') : NULL;
    if (!at || (size_t)(at - sender) != strlen(c->user) ||
        strncasecmp(sender, c->user, (size_t)(at - sender)) != 0)
        return false;
    if (strcasecmp(at + 1, cfg->hostname) == 0)
        return true;
    for (size_t i = 0; i < cfg->n_local_domains; i++)
        if (strcasecmp(at + 1, cfg->local_domains[i]) == 0)
            return true;
    return false;
}

void submission_trace(const struct config *cfg, const struct submission_caller *c,
                      const char *sender, const char *qid, const char *version, const char *date,
                      struct buf *out)
{
    buf_printf(out, "Received: (from %s@localhost)\r\n\tby %s (ringmail/%s) id %s;\r\n\t%s\r\n",
               c->user, cfg->hostname, version, qid, date);
    if (!c->trusted && !submission_own_sender(cfg, c, sender))
        buf_printf(out, "X-Authentication-Warning: %s: %s set sender to %s using -f\r\n",
                   cfg->hostname, c->user, sender && sender[0] ? sender : "<>");
}
