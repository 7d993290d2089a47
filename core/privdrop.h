/*
 * core/privdrop.h — running as the run_as user.
 *
 * Started as root, the daemon binds its listeners and prepares the spool as root, then
 * becomes run_as (run_as's own supplementary groups only, gid then uid, and a check that
 * root cannot be regained). Started as anyone else it stays who it is. Errors are returned with a
 * message that says what to do (e.g. how to create the user).
 */
#ifndef RINGMAIL_CORE_PRIVDROP_H
#define RINGMAIL_CORE_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct privdrop_user {
    bool switch_user; /* we are root and will become uid/gid */
    uid_t uid;
    gid_t gid;
    char name[64];
};

/* Resolves run_as. When not root, switch_user is false and uid/gid are our own. */
int privdrop_resolve(const char *run_as, struct privdrop_user *u, char *err, size_t errlen);
/* Becomes u (when switch_user), then sets no_new_privs (PR_SET_NO_NEW_PRIVS): for the
 * engine, which never needs a set-id program. 0, or -1 with `err`. */
int privdrop_apply(const struct privdrop_user *u, char *err, size_t errlen);

#endif
