/*
 * core/filewatch.h — whether some files changed since they were last looked at: the
 * privileged parent's cue to read the configuration again when the aliases, their
 * :include: lists or the user list change (sendmail rebuilds its aliases when the text is
 * newer than the database; ringmail, which reads the text, reloads).
 *
 * A file is its device, inode, size and modification time as stat(2) says, or its absence;
 * any difference is a change (an editor that writes a new file and renames it over the old
 * one changes the inode). Owns its copies of the paths. Not thread-safe; no I/O but stat.
 */
#ifndef RINGMAIL_CORE_FILEWATCH_H
#define RINGMAIL_CORE_FILEWATCH_H

#include <stdbool.h>
#include <stddef.h>

struct filewatch;

struct filewatch *filewatch_new(void);
void filewatch_free(struct filewatch *w);
/* Watches exactly these files from now on (their state now is the reference). 0, or -1
 * when memory ran out (then nothing is watched). */
int filewatch_set(struct filewatch *w, const char *const *paths, size_t n);
/* Whether any watched file differs from the reference; the reference becomes the state now,
 * so one change is reported once. `which` (may be NULL) gets the first changed path, valid
 * until the next call. */
bool filewatch_changed(struct filewatch *w, const char **which);

#endif
