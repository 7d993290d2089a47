/*
 * core/local_agent.h — the privileged parent's half of local delivery (DESIGN.md,
 * "Processes"; the request and reply are delivery/local_proto.h).
 *
 * The parent receives a struct local_request with the message's df and a reply socket from
 * the engine, checks it (local_agent_check: pure but for the user and group lookups, so a
 * forged request is refused before anything runs) and hands it to an agent: a child that
 * has become the recipient (never uid 0: uid-0 recipients and alias targets run as
 * mailers.default_user), reads the user's .forward as that user with sendmail's safety
 * rules, delivers with the delivery/mailbox.h or delivery/pipe.h mailers and writes exactly
 * one struct local_reply per request. A refused request is answered by the parent itself.
 *
 * Agents are reused, as Postfix's local(8) is: one that has become a user (uid, gid,
 * groups) takes that user's next requests over its own socketpair (the df and the reply
 * socket passed along), and ends after a few idle seconds, a hundred deliveries or a
 * reload. At most mailers.max_agents live at once and two are busy for one user; the
 * requests beyond wait in the parent, in order, and start as agents free up (an idle agent
 * of another user makes room). An agent that dies mid-request leaves the engine an end of
 * file on the reply socket (4.3.0). The parent never waits for an agent: it reaps them when
 * SIGCHLD says so (local_agents_reaped) and learns that one is free from local_agents_fd.
 *
 * Started as another user than root, the parent cannot change identity: only deliveries
 * that run as its own user are possible, the others are deferred (4.3.0) with a log line.
 *
 * Owns: struct local_agents (the agents, their sockets, the waiting requests and their
 * descriptors). The configuration is the caller's
 * and must outlive each call. Not thread-safe (the parent has one thread).
 */
#ifndef RINGMAIL_CORE_LOCAL_AGENT_H
#define RINGMAIL_CORE_LOCAL_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/config.h"
#include "delivery/local_proto.h"

/* A passwd entry, by value. */
struct local_agent_user {
    uid_t uid;
    gid_t gid;
    char login[64];
    char home[PATH_MAX];
    char shell[256];
};

/* Finds `login` in the user database: 0, or -1 when there is no such user (errno 0) or the
 * lookup failed (errno set). getpwnam(3) in the daemon, a table in the tests. */
typedef int (*local_agent_getpw_fn)(void *arg, const char *login, struct local_agent_user *u);
int local_agent_getpwnam(void *arg, const char *login, struct local_agent_user *u);

struct local_agent_ctx {
    const struct config *cfg;
    local_agent_getpw_fn getpw;
    void *getpw_arg;
    uid_t self; /* the parent's uid: 0 may become anyone, any other only itself */
};

enum local_agent_mailer {
    LOCAL_AGENT_MBOX = 1, /* mailbox_mbox(path) */
    LOCAL_AGENT_MAILDIR,  /* mailbox_maildir(path) */
    LOCAL_AGENT_FILE,     /* mailbox_file(path) */
    LOCAL_AGENT_PROGRAM,  /* pipe_deliver(args) */
};

#define LOCAL_AGENT_ARGS_MAX 2048 /* the program's argv, NUL-separated */
#define LOCAL_AGENT_ARGC_MAX 64

/* What one agent does: plain values (no pointers), so it survives the fork as it is. */
struct local_agent_plan {
    enum local_agent_mailer mailer;
    char mailer_name[32];            /* for the reply's mailer= */
    struct local_agent_user as;      /* whom the agent becomes */
    struct local_agent_user rcpt;    /* whose mailbox and .forward: `as`, but for root */
    bool change_identity;            /* the parent is root: initgroups, setgid, setuid */
    gid_t extra_gid;                 /* a group-writable mail spool's group for the mbox; or -1 */
    bool read_forward;               /* MAILBOX: the user's .forward comes first */
    bool forward_must_name;          /* PROGRAM/FILE from a .forward: it must still say so */
    char path[PATH_MAX];             /* MBOX, MAILDIR, FILE */
    char args[LOCAL_AGENT_ARGS_MAX]; /* PROGRAM: argv[0] the path, then its words */
    size_t argc;
    bool from_line, return_path; /* PROGRAM: sendmail's mailer flags (not n) and P */
    unsigned timeout_s;
};

/* Checks one request and works out what the agent will do. 0 with `plan` filled, or -1
 * with `refusal` the reply to send (LOCAL_FAILED for what will never work, LOCAL_DEFERRED
 * for what may later). Refuses: an unterminated field, CR/LF, an unknown version, op or
 * flag; an unknown user (5.1.1); a detail or login that could name another path; an alias
 * PROGRAM/FILE not in cfg->map.aliases (5.7.1); a program outside mailers.smrsh_dir
 * (5.7.1, smrsh's words); a relative FILE; a .forward PROGRAM/FILE of a user whose shell is
 * not in /etc/shells (5.7.1, sendmail's "unsafe shell"); an identity of uid 0 (4.3.0);
 * another user than itself when the parent is not root (4.3.0). */
int local_agent_check(const struct local_agent_ctx *ctx, const struct local_request *rq,
                      struct local_agent_plan *plan, struct local_reply *refusal);

/* .forward text that names `target` as a program ("|cmd", LOCAL_OP_PROGRAM) or a file
 * ("/path", LOCAL_OP_FILE), as sendmail reads it: each line a list of targets. */
bool local_agent_forward_names(const char *text, size_t len, enum local_op op, const char *target);

/* Opens the first of mailers.forward_path ($z home, $u login, $h detail, $w hostname) that
 * exists and is safe as sendmail's defaults see it: a regular file, not a symbolic link,
 * owned by plan->rcpt or root, not group- or world-writable, in directories that are not
 * group- or world-writable (unless sticky). The unsafe ones are logged and skipped.
 * 1 with the text (NUL-terminated) in text[0..size), followed by the :include: files it
 * names (core/local_forward.h), 0 when there is none, -1 when the first usable one does not
 * fit (logged). Run as the user. */
int local_agent_read_forward(const struct config *cfg, const struct local_agent_plan *plan,
                             const struct local_request *rq, char *text, size_t size);

struct local_agents;
/* `log_targets`: where an agent's lines go (util/log.h), as the parent's. NULL when out of
 * memory or descriptors. */
struct local_agents *local_agents_new(unsigned log_targets);
/* Lets every agent go, and waits until the idle ones have ended (the busy ones end after
 * their request, unwaited). */
void local_agents_free(struct local_agents *la);
/* The configuration for the requests from now on (the caller's, kept until the next call):
 * idle agents of the previous one end, busy ones after their request. Before any serve. */
void local_agents_configure(struct local_agents *la, const struct config *cfg);
/* Agent processes not reaped yet. */
unsigned local_agents_running(const struct local_agents *la);
/* Readable when an agent is free again or gone: then call local_agents_events. */
int local_agents_fd(const struct local_agents *la);
void local_agents_events(struct local_agents *la);
/* False while too many requests wait: do not read the engine's socket then. */
bool local_agents_accepting(const struct local_agents *la);
/* Messages from the engine's local-delivery socket (non-blocking): each checked, then
 * queued for an agent or answered with its refusal. 0, or -1 when the engine has closed
 * the socket. */
int local_agents_serve(struct local_agents *la, int sock);
/* Ends the agents idle for too long: the milliseconds until the next one is due, or -1. */
int local_agents_tick(struct local_agents *la);
/* A child has ended: true when it was an agent (then forgotten; a failure logged). */
bool local_agents_reaped(struct local_agents *la, pid_t pid, int wstatus);

#endif
