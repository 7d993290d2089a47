/*
 * core/local_forward.h — a user's .forward together with the :include: files it names, as
 * the agent reads them as that user (core/local_agent.h) and the engine expands them
 * (core/localrcpt.c, compat/alias_expand.h).
 *
 * The engine cannot read a user's files; the agent, which runs as the user, can, and its
 * only way back is the NUL-terminated text of a LOCAL_FORWARD reply (delivery/local_proto.h).
 * So the agent appends to the .forward's text one section per :include: file reachable from
 * it (nested ones too, each path once, ALIAS_EXPAND_DEPTH_MAX levels deep):
 *
 *     "#\x1einclude ERRNO LEN PATH\n" then LEN bytes of the file, then "\n"
 *
 * ERRNO 0: the file's text; else why it cannot be used (LEN 0), as the include callback of
 * compat/alias_expand.h wants it: ENOENT, EACCES, EPERM (unsafe, sendmail's safefile) bounce
 * the target with 550 5.2.4; EFBIG (no room left in the reply) and the rest defer it.
 * The header is a comment line, so the packed text read as a whole (aliases_parse_targets)
 * still names every target of the .forward and of its files: the agent's check that a
 * .forward names a program or file (local_agent_forward_names) covers included ones too.
 * A .forward holding the 0x1e byte is not used (the agent logs it), so no section can start
 * inside the .forward's own text; a section the user forges anyway names only targets the
 * user could have written in the .forward itself.
 *
 * sendmail's include() rules for a :include: of a .forward (DontBlameSendmail defaults):
 * read as the .forward's owner, an absolute path, a regular file that is neither group- nor
 * world-writable, in directories that are not group- or world-writable unless sticky; any
 * owner. Not thread-safe where it logs; no allocation kept.
 */
#ifndef RINGMAIL_CORE_LOCAL_FORWARD_H
#define RINGMAIL_CORE_LOCAL_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Why a file at `path` with status `st` is unsafe to read as `owner`'s .forward (owner and
 * file rules) or, when must_own is false, as an :include: file (file rules only); both check
 * the directories. NULL when safe. */
const char *local_forward_unsafe(const char *path, const struct stat *st, bool must_own,
                                 uid_t owner);

/* Agent side, run as the user: appends the sections for the :include: files named by the
 * .forward text[0..*len) (NUL-terminated, `size` bytes in all). The .forward's text gets a
 * final newline first. Each file that cannot be used is logged once with `qid`. False
 * (nothing appended, logged) when the .forward holds the 0x1e byte. */
bool local_forward_add_includes(const char *qid, char *text, size_t *len, size_t size);

/* Engine side: the length of the .forward's own text in `packed` (before any section). */
size_t local_forward_text_len(const char *packed);

/* Engine side: the :include: file `path` as the agent read it, for alias_expand's include
 * callback: 0 with a malloc'ed copy in *text (NUL-terminated) and *len, or its errno; EAGAIN
 * when the agent sent no section for it (a later attempt reads it again), ENOMEM. */
int local_forward_include(const char *packed, const char *path, char **text, size_t *len);

#endif
