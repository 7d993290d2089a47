#include "core/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int privdrop_resolve(const char *run_as, struct privdrop_user *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    if (geteuid() != 0) {
        u->uid = geteuid();
        u->gid = getegid();
        struct passwd *pw = getpwuid(u->uid);
        snprintf(u->name, sizeof(u->name), "%s", pw ? pw->pw_name : "?");
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(run_as);
    if (!pw) {
        snprintf(err, errlen,
                 "run_as user '%s' does not exist: create it (useradd --system --no-create-home "
                 "--shell /usr/sbin/nologin %s) or set run_as in the configuration",
                 run_as, run_as);
        return -1;
    }
    u->switch_user = pw->pw_uid != 0;
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
    return 0;
}

/* From root to the user, for good. */
static int privdrop_switch(const struct privdrop_user *u, char *err, size_t errlen)
{
    /* The user's own supplementary groups and no others: Debian grants saslauthd's socket
     * and /etc/sasldb2 to group `sasl`, and an operator adds run_as to it for SMTP AUTH
     * (docs/auth.md), as for Postfix. Root's groups are never kept. */
    if (initgroups(u->name, u->gid) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0) {
        snprintf(err, errlen, "cannot become user %s (uid %u): %s", u->name, (unsigned)u->uid,
                 strerror(errno));
        return -1;
    }
    /* setuid() from root must be irreversible; refuse to run if it is not. */
    if (setuid(0) == 0) {
        snprintf(err, errlen, "dropped to user %s but could regain root; refusing to run", u->name);
        return -1;
    }
    return 0;
}

int privdrop_apply(const struct privdrop_user *u, char *err, size_t errlen)
{
    if (u->switch_user && privdrop_switch(u, err, errlen) < 0)
        return -1;
    /* systemd's NoNewPrivileges= would bind the parent too, whose local delivery may run
     * set-id programs (procmail, dovecot-lda); the engine runs none, so it binds itself:
     * nothing it or a hijacker of it executes gains privileges. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        return -1;
    }
    return 0;
}
