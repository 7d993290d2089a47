/*
 * core/pidfile.h — the daemon's pid file (sendmail's confPID_FILE, Postfix's master.pid).
 *
 * Holds the privileged parent's pid: the process operators and init systems signal
 * (SIGHUP reloads, SIGTERM stops). Written only once the spool lock is held, so a second
 * instance that is refused never overwrites the running one's file; removed at exit if it
 * still names this process. Errors name the file.
 */
#ifndef RINGMAIL_CORE_PIDFILE_H
#define RINGMAIL_CORE_PIDFILE_H

#include <stddef.h>

/* Writes getpid() to `path` (created or replaced, mode 0644, never through a symlink).
 * 0, or -1 with `err`. */
int pidfile_write(const char *path, char *err, size_t errlen);
/* Removes `path` if it names this process. */
void pidfile_remove(const char *path);

#endif
