/*
 * queue/mailstats.h — sendmail's StatusFile: messages and bytes per mailer, and connections,
 * counted since a moment, in a file that ringmail-stats (mailstats(8)) prints and resets.
 *
 * The file (docs/statistics.md) is ringmail's own fixed binary layout, in host byte order:
 * a header (magic "RMSTATS", version, size, the time counting started, the three connection
 * counters: from, to, rejected) and MAILSTATS_MAILERS slots, each a mailer's name and its
 * seven counters (sendmail's stat_nf, stat_bf, stat_nt, stat_bt, stat_nr, stat_nd,
 * stat_nq). Bytes are counted as sendmail counts them: per message, its size in kilobytes
 * of 1000 rounded up. The first slots are named when the file is made, in the order of
 * sendmail's mailer numbers (prog, *file*, *include*, local, smtp, esmtp, smtp8, dsmtp,
 * relay) then lmtp and error; any other mailer name (a local agent's: procmail, ...) takes
 * the next free slot the first time it is counted.
 *
 * The engine maps the file MAP_SHARED (mailstats_attach) and its worker threads count with
 * atomic adds into the mapping: no lock and no system call per event. Counting happens only
 * while the file exists when the engine starts (or reloads), as sendmail counts only when its
 * StatusFile exists; an empty file (touched) is given its layout by the engine. The file is
 * never truncated or unmapped while the engine runs: a reset (mailstats_snapshot with
 * `reset`) exchanges each counter with 0 atomically, so every event lands in exactly one
 * period, and then sets the time counting started to now.
 *
 * Ownership: a struct mailstats is its opener's (mailstats_close). The installed one
 * (mailstats_attach) is the process's until mailstats_detach, which is called only after
 * every counting thread has ended. The counting functions are thread-safe and never fail:
 * with no file installed they do nothing; a mailer that finds no free slot is not counted
 * (logged once). Errors of opening are returned with a message in sendmail's mailstats
 * words; mailstats_attach logs them itself.
 */
#ifndef RINGMAIL_QUEUE_MAILSTATS_H
#define RINGMAIL_QUEUE_MAILSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAILSTATS_VERSION      1
#define MAILSTATS_MAILERS      32
#define MAILSTATS_NAME_MAX     24           /* a mailer's name with its NUL; longer ones are cut */
#define MAILSTATS_DEFAULT_NAME "statistics" /* in the spool directory */

struct mailstats;

enum mailstats_mode {
    MAILSTATS_READ,  /* ringmail-stats without -p: read only */
    MAILSTATS_RESET, /* ringmail-stats -p: read and write (the reset) */
    MAILSTATS_COUNT, /* the engine: read and write; an empty file gets its layout */
};

/* What a message event counts, per mailer (sendmail's markstats() types). */
enum mailstats_msg {
    MAILSTATS_FROM,       /* accepted: msgsfr and bytes_from of the sender's mailer */
    MAILSTATS_TO,         /* delivered to a recipient: msgsto and bytes_to */
    MAILSTATS_REJECT,     /* refused by policy or a filter: msgsrej */
    MAILSTATS_DISCARD,    /* discarded (access DISCARD, a filter): msgsdis */
    MAILSTATS_QUARANTINE, /* held (a ruleset's or a filter's quarantine): msgsqur */
};

/* The C line: connections accepted, made, refused. */
enum mailstats_conn { MAILSTATS_CONN_FROM, MAILSTATS_CONN_TO, MAILSTATS_CONN_REJECT };

/* One mailer's counters as read. */
struct mailstats_row {
    unsigned number; /* its slot: the M column */
    char name[MAILSTATS_NAME_MAX];
    uint64_t msgsfr, kbytes_from, msgsto, kbytes_to, msgsrej, msgsdis, msgsqur;
};

struct mailstats_snapshot {
    int64_t since; /* the time counting started (seconds since the epoch) */
    uint64_t conn_from, conn_to, conn_rejected;
    size_t n_rows;                                /* the named slots, in slot order */
    struct mailstats_row rows[MAILSTATS_MAILERS]; /* including those counting nothing yet */
};

/* Opens and maps `path`. 0; -ENOENT when it does not exist ("PATH: No such file or
 * directory"); another -errno for a file that cannot be opened or mapped; -EPROTO for one
 * that is not a statistics file of this version ("incorrect magic number in PATH", "version
 * (1) incompatible with PATH version (N)", "PATH: file size changed"). A file of size 0 reads
 * as all zeros counted since now (as mailstats reads sendmail's touched file); in
 * MAILSTATS_COUNT mode it is given its layout first. `err` holds the reason. */
int mailstats_open(const char *path, enum mailstats_mode mode, struct mailstats **out, char *err,
                   size_t errlen);
void mailstats_close(struct mailstats *s);

/* Counts one event into `s` (opened MAILSTATS_COUNT or MAILSTATS_RESET). `size`: the
 * message's size in bytes (MAILSTATS_FROM and MAILSTATS_TO add it, in kilobytes). */
void mailstats_add_msg(struct mailstats *s, enum mailstats_msg ev, const char *mailer,
                       uint64_t size);
void mailstats_add_conn(struct mailstats *s, enum mailstats_conn ev);

/* Reads every counter into `out`; with `reset` (a file opened MAILSTATS_RESET) takes each
 * one and leaves 0 in its place, then starts the period anew at now: `out` holds what the
 * ended period counted. */
void mailstats_snapshot(struct mailstats *s, bool reset, struct mailstats_snapshot *out);

/* The engine's file: opens `path` MAILSTATS_COUNT and installs it for the counting below,
 * unless one is installed already (a reload never swaps the mapping under the workers: a
 * change of the path takes effect at a restart). Logs the outcome: counting, or why not
 * (the file does not exist: info; anything else: a warning). NULL or "" does nothing. */
void mailstats_attach(const char *path);
/* Whether a file is installed. */
bool mailstats_attached(void);
/* Uninstalls and closes the file; only once no thread counts any more. */
void mailstats_detach(void);

/* Counts into the installed file; nothing when none is installed. */
void mailstats_msg(enum mailstats_msg ev, const char *mailer, uint64_t size);
void mailstats_conn(enum mailstats_conn ev);

#endif
