/*
 * util/fileset.h — whole files read by one process on behalf of another.
 *
 * The privileged parent may read what the unprivileged engine may not (a private key
 * readable by root only, a root-owned map). It reads every file a configuration names
 * into a fileset, recording failures too (errno), and hands the set over as one sealed
 * memory file; the engine parses exactly the bytes the parent read and never opens those
 * paths itself. So a reload works with root-only files, and both processes see the same
 * contents even if a file changes in between.
 *
 * Three ways to read (fileset_read): with no fileset, from disk; with a recording fileset
 * (fileset_new), from disk, keeping a copy of what was read; with a replayed one
 * (fileset_from_fd), only from what was recorded — a path the parent did not read is an
 * error, never a silent read from disk.
 *
 * Ownership: the fileset owns its copies; fileset_read returns a fresh NUL-terminated
 * copy the caller frees. Not thread-safe: one thread builds or reads a fileset at a time.
 */
#ifndef RINGMAIL_UTIL_FILESET_H
#define RINGMAIL_UTIL_FILESET_H

#include <stddef.h>

struct fileset;

/* A recording fileset; NULL when out of memory. */
struct fileset *fileset_new(void);
void fileset_free(struct fileset *fs);

/* Reads `path` whole: 0 with *data (NUL-terminated, the caller frees it) and *len, or
 * -errno with `err` saying "PATH: what went wrong". A file larger than `max` bytes is
 * refused (-EFBIG). A recording fileset keeps the outcome, failures included, so the
 * replay fails the same way. */
int fileset_read(struct fileset *fs, const char *path, size_t max, char **data, size_t *len,
                 char *err, size_t errlen);

/* fileset_read for a file of secrets (credentials): refused, and recorded as refused, unless
 * it is owned by the reading user (root, in the privileged parent) and neither group nor
 * others have any permission on it: -FILESET_ENOTPRIVATE with `err` "PATH: ..." saying so. */
#define FILESET_ENOTPRIVATE 0x10000 /* beyond every errno */
int fileset_read_private(struct fileset *fs, const char *path, size_t max, char **data, size_t *len,
                         char *err, size_t errlen);

/* Content that is not one file but is handed over the same way (the system's users, which
 * the parent lists through NSS): a replayed set answers with the recorded copy; otherwise
 * `make` makes it (NUL-terminated, malloc'ed, 0 or -errno) and a recording set keeps a
 * copy. `name` is not a path ("(users)"). 0 with *data (the caller frees it) and *len, or
 * -errno with `err`. */
int fileset_generate(struct fileset *fs, const char *name,
                     int (*make)(void *arg, char **data, size_t *len), void *arg, char **data,
                     size_t *len, char *err, size_t errlen);
/* Records `path` in a recording set without handing a copy out (what the engine will ask
 * for): 0, the file's -errno (recorded too), or -ENOMEM when nothing could be recorded. */
int fileset_add(struct fileset *fs, const char *path, size_t max);

/* The whole set as a sealed memfd (read-only, size fixed) for another process: the fd,
 * or -1 with `err`. The caller closes it once it is sent. */
int fileset_to_fd(const struct fileset *fs, char *err, size_t errlen);
/* A replaying fileset from such an fd (not closed here), or NULL with `err` when it is not
 * one (truncated, wrong magic, too large). */
struct fileset *fileset_from_fd(int fd, char *err, size_t errlen);

#endif
