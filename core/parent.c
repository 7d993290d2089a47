#include "core/parent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "core/daemon.h"
#include "core/filewatch.h"
#include "core/listener.h"
#include "core/local_agent.h"
#include "core/pidfile.h"
#include "core/pickup.h"
#include "core/privsep.h"
#include "core/service.h"
#include "core/summary.h"
#include "core/submission.h"
#include "core/tlsconf.h"
#include "core/version.h"
#include "util/log.h"

struct parent {
    char *path; /* the configuration, absolute (detached, the directory is "/") */
    pid_t engine;
    int sock;       /* to the engine; -1 once it closed */
    int local_sock; /* the engine's local delivery requests; -1 once it closed */
    /* The latest configuration read: the local delivery agents' (mailboxes, aliases). */
    struct config *cfg;
    struct local_agents *agents;
    struct filewatch *watch; /* cfg's aliases, :include: lists and the user list */
    struct timespec watched; /* when they were last looked at */
    int sigfd;
    int notify; /* detached: the starting command waits on this for the status; else -1 */
    bool foreground;
    unsigned log_targets; /* util/log's, once the configuration is read */
    bool ready, stopping, recovered;
    uint64_t recovered_messages;         /* queued at start, once recovered */
    bool traffic;                        /* the engine has sent the counts below */
    uint64_t accepted, sessions, queued; /* PRIVSEP_ACCEPTED, _SESSIONS, _QUEUED */
    /* For the service manager's STATUS= and the summary at the end. */
    time_t started;
    unsigned reloads, reloads_failed;
    char last_reload[160]; /* how the latest reload ended; "" before the first */
    char *pid_file;        /* once written: removed at exit */
    /* The unix sockets (submission, control) once made: their files are removed at exit. */
    char *socket_paths[2];
    struct listener_unix sockets[2];
};

/* A relative --config would be lost once detached (the working directory becomes "/"),
 * and every reload reads it again. */
static char *parent_abspath(const char *path)
{
    if (!path || path[0] == '/')
        return path ? strdup(path) : NULL;
    char *cwd = getcwd(NULL, 0);
    size_t len = cwd ? strlen(cwd) + strlen(path) + 2 : 0;
    char *abs = cwd ? malloc(len) : NULL;
    if (abs)
        snprintf(abs, len, "%s/%s", cwd, path);
    free(cwd);
    return abs;
}

/* The starting command learns how start-up ended (once). */
static void parent_notify(struct parent *p, int status)
{
    if (p->notify < 0)
        return;
    unsigned char b = (unsigned char)status;
    if (write(p->notify, &b, 1) < 0)
        log_warn("cannot tell the starting command the outcome: %s", strerror(errno));
    close(p->notify);
    p->notify = -1;
}

/* Detaching forks: the command that was started waits for one byte, the exit status, and
 * exits with it; the child carries on as the daemon in a session of its own. */
static int parent_detach(struct parent *p, char *err, size_t errlen)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot detach: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot detach: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid > 0) {
        close(fds[1]);
        unsigned char status = EX_SOFTWARE;
        ssize_t n;
        do
            n = read(fds[0], &status, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 ? status : EX_SOFTWARE);
    }
    close(fds[0]);
    p->notify = fds[1];
    if (setsid() < 0 || chdir("/") < 0) {
        snprintf(err, errlen, "cannot detach: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Many connections each need a descriptor: use everything the hard limit allows (the
 * engine inherits it and fits limits.connections to it). */
static void parent_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the open files limit: %s", strerror(errno));
    }
}

/* Everything the engine needs that only this process may read, for `path`. */
static struct config *parent_read(const char *path, struct fileset **files, char *err,
                                  size_t errlen)
{
    struct config *cfg = NULL;
    if (!(*files = fileset_new()))
        snprintf(err, errlen, "out of memory");
    else if ((cfg = config_load(path, *files, err, errlen)) &&
             tlsconf_read_files(cfg, *files, err, errlen) < 0) {
        config_free(cfg);
        cfg = NULL;
    }
    if (!cfg) {
        fileset_free(*files);
        *files = NULL;
    }
    return cfg;
}

/* Looked at this often: an edited aliases file or a new user is seen within these
 * seconds without a SIGHUP (sendmail's daemon rebuilds a stale aliases database on its
 * own too). */
#define PARENT_WATCH_MS 5000

/* What a change of makes the parent read the configuration again: the aliases files,
 * their :include: lists, and the user list (a new user is a known recipient). */
static void parent_watch_set(struct parent *p)
{
    const struct config *c = p->cfg;
    if (!c || !p->watch)
        return;
    size_t n = c->maps.aliases.n + c->map.n_includes + 1;
    const char **paths = calloc(n, sizeof(*paths));
    size_t k = 0;
    for (size_t i = 0; paths && i < c->maps.aliases.n; i++)
        paths[k++] = c->maps.aliases.v[i];
    for (size_t i = 0; paths && i < c->map.n_includes; i++)
        paths[k++] = c->map.includes[i].path;
    if (paths)
        paths[k++] = "/etc/passwd";
    if (!paths || filewatch_set(p->watch, paths, k) < 0)
        log_warn("out of memory: changes to the aliases are seen at the next SIGHUP only");
    free(paths);
    clock_gettime(CLOCK_MONOTONIC, &p->watched);
}

/* STATUS= for the service manager: what serves, as the parent knows it. */
static void parent_status(const struct parent *p, char *out, size_t len)
{
    const struct config *c = p->cfg;
    size_t used = 0;
    int w = snprintf(out, len, "serving on");
    for (size_t i = 0; c && w > 0 && (size_t)w < len - used && i < c->n_listen; i++) {
        used += (size_t)w;
        w = snprintf(out + used, len - used, "%s %s %s:%u", i ? "," : "", c->listen[i].name,
                     c->listen[i].address, (unsigned)c->listen[i].port);
    }
    if (w > 0 && (size_t)w < len - used) {
        used += (size_t)w;
        char spool[64] = "spool being recovered";
        if (p->recovered)
            snprintf(spool, sizeof(spool), "%llu message(s) in the spool at start",
                     (unsigned long long)p->recovered_messages);
        char traffic[96] = "";
        if (p->traffic)
            snprintf(traffic, sizeof(traffic),
                     "; %llu message(s) accepted, %llu session(s) open, %llu queued",
                     (unsigned long long)p->accepted, (unsigned long long)p->sessions,
                     (unsigned long long)p->queued);
        snprintf(out + used, len - used, "; %u workers; %s%s%s%s", c ? c->workers : 0, spool,
                 traffic, p->last_reload[0] ? "; " : "", p->last_reload);
    }
}

/* The engine said how a reload ended (or it never reached the engine): the manager hears
 * READY=1 again either way, since the daemon serves, with the outcome in STATUS=. */
static void parent_reload_ended(struct parent *p, bool ok)
{
    char when[32], status[512];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    p->reloads++;
    if (!ok)
        p->reloads_failed++;
    snprintf(p->last_reload, sizeof(p->last_reload),
             ok ? "reloaded %s"
                : "reload failed %s, the previous configuration serves (see the log)",
             when);
    parent_status(p, status, sizeof(status));
    service_ready(status);
}

static void parent_reload(struct parent *p)
{
    service_reloading();
    char err[1024] = "the engine has gone";
    struct fileset *files = NULL;
    struct config *cfg = p->sock >= 0 ? parent_read(p->path, &files, err, sizeof(err)) : NULL;
    int fd = cfg ? fileset_to_fd(files, err, sizeof(err)) : -1;
    if (fd >= 0 && privsep_send(p->sock, PRIVSEP_RELOAD, fd) < 0) {
        snprintf(err, sizeof(err), "cannot hand the configuration to the engine: %s",
                 strerror(errno));
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        log_error("reload failed, keeping the running configuration: %s", err);
        config_free(cfg);
        parent_reload_ended(p, false); /* the engine never saw it */
    } else {
        log_set_ident(cfg->log_ident);
        log_set_format(config_log_format(cfg));
        close(fd);
        local_agents_configure(p->agents, cfg);
        config_free(p->cfg);
        p->cfg = cfg;
        parent_watch_set(p);
    }
    fileset_free(files);
}

/* Every PARENT_WATCH_MS: a watched file that changed makes a reload. */
static void parent_watch_check(struct parent *p)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - p->watched.tv_sec) * 1000 + (now.tv_nsec - p->watched.tv_nsec) / 1000000 <
        PARENT_WATCH_MS)
        return;
    p->watched = now;
    const char *which = NULL;
    if (!filewatch_changed(p->watch, &which))
        return;
    log_info("%s changed: reloading", which);
    parent_reload(p);
}

/* The engine has ended: the daemon's exit status. */
static int parent_engine_ended(struct parent *p, int wstatus)
{
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : EX_SOFTWARE;
    if (!p->ready)
        return code ? code : EX_SOFTWARE; /* it said why */
    if (p->stopping && WIFEXITED(wstatus))
        return code;
    if (WIFSIGNALED(wstatus))
        log_error("the engine (pid %ld) was killed by signal %d: stopping", (long)p->engine,
                  WTERMSIG(wstatus));
    else
        log_error("the engine (pid %ld) exited with status %d: stopping", (long)p->engine, code);
    return EX_SOFTWARE;
}

static void parent_engine_message(struct parent *p)
{
    char status[512];
    uint32_t type;
    uint64_t value;
    int fd;
    int got = privsep_recv(p->sock, &type, &value, &fd);
    if (fd >= 0)
        close(fd); /* the engine never has a reason to send one */
    if (got <= 0) {
        close(p->sock); /* the engine is ending; SIGCHLD tells how */
        p->sock = -1;
    } else if (type == PRIVSEP_READY && !p->ready) {
        p->ready = true;
        parent_notify(p, EX_OK);
        if (!p->foreground)
            daemon_leave_terminal();
        parent_status(p, status, sizeof(status));
        service_ready(status);
    } else if (type == PRIVSEP_RECOVERED && p->ready) {
        pickup_start(p->path); /* the maildrop's; logs its own failure */
        p->recovered = true;
        p->recovered_messages = value;
        parent_status(p, status, sizeof(status));
        service_status(status);
    } else if (type == PRIVSEP_ACCEPTED) {
        p->accepted = value;
    } else if (type == PRIVSEP_SESSIONS) {
        p->sessions = value;
    } else if (type == PRIVSEP_QUEUED && p->ready) {
        p->queued = value;
        p->traffic = true;
        parent_status(p, status, sizeof(status));
        service_status(status);
    } else if (type == PRIVSEP_RELOADED || type == PRIVSEP_RELOAD_FAILED) {
        parent_reload_ended(p, type == PRIVSEP_RELOADED);
    } else if (type == PRIVSEP_RELOAD_ASK) {
        parent_reload(p);
    } else {
        log_warn("unexpected message %u from the engine: ignored", type);
    }
}

/* SIGCHLD: the engine or local delivery agents have ended; never waits. 1 with the
 * engine's status in *engine_status once it has ended, else 0. */
static int parent_reap(struct parent *p, int *engine_status)
{
    int ended = 0, wstatus;
    pid_t pid;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
        if (pid == p->engine) {
            *engine_status = wstatus;
            ended = 1;
        } else if (!local_agents_reaped(p->agents, pid, wstatus)) {
            log_debug("child %ld ended", (long)pid);
        }
    }
    return ended;
}

static int parent_loop(struct parent *p)
{
    for (;;) {
        int idle_ms = local_agents_tick(p->agents);
        struct pollfd fds[4] = {
            {p->sigfd, POLLIN, 0},
            {p->sock, POLLIN, 0},
            /* not even its hang-up while too many wait: serve would read nothing */
            {local_agents_accepting(p->agents) ? p->local_sock : -1, POLLIN, 0},
            {local_agents_fd(p->agents), POLLIN, 0}};
        if (poll(fds, 4,
                 idle_ms >= 0 && idle_ms < PARENT_WATCH_MS ? idle_ms + 1 : PARENT_WATCH_MS) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", strerror(errno));
            return EX_OSERR;
        }
        if (fds[1].revents)
            parent_engine_message(p);
        if (fds[3].revents)
            local_agents_events(p->agents);
        if (fds[2].revents && local_agents_serve(p->agents, p->local_sock) < 0) {
            close(p->local_sock); /* the engine is ending; SIGCHLD tells how */
            p->local_sock = -1;
        }
        if (p->ready && !p->stopping)
            parent_watch_check(p);
        if (!fds[0].revents)
            continue;
        struct signalfd_siginfo si;
        if (read(p->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
            continue;
        int wstatus;
        switch (si.ssi_signo) {
        case SIGHUP:
            parent_reload(p);
            break;
        case SIGTERM:
        case SIGINT:
            /* The engine drains; a second signal, passed on too, makes it close at once. */
            if (!p->stopping)
                service_stopping();
            p->stopping = true;
            kill(p->engine, (int)si.ssi_signo);
            break;
        case SIGCHLD:
            if (parent_reap(p, &wstatus))
                return parent_engine_ended(p, wstatus);
            break;
        default:
            break;
        }
    }
}

/* Binds every listener: fds[listener][worker]. */
static int **parent_listen(const struct config *cfg, char *err, size_t errlen)
{
    int **fds = calloc(cfg->n_listen, sizeof(*fds));
    for (size_t i = 0; fds && i < cfg->n_listen; i++) {
        if (!(fds[i] = calloc(cfg->workers, sizeof(int))) ||
            listener_open(&cfg->listen[i], cfg->workers, fds[i], err, errlen) < 0) {
            free(fds[i]);
            fds[i] = NULL;
            for (size_t j = 0; j < i; j++) {
                for (unsigned w = 0; w < cfg->workers; w++)
                    close(fds[j][w]);
                free(fds[j]);
            }
            free(fds);
            return NULL;
        }
    }
    if (!fds)
        snprintf(err, errlen, "out of memory");
    return fds;
}

/* The submission and control sockets, owned by run_as so the engine may remove and
 * replace nothing of root's; their files are the parent's to remove at exit. */
static int parent_listen_unix(struct parent *p, struct daemon_start *st, char *err, size_t errlen)
{
    const struct config *cfg = st->cfg;
    const struct {
        const char *what, *path;
        int *fd;
    } socks[2] = {{"submission.socket", cfg->submission_socket, &st->submission_fd},
                  {"submission.control_socket", cfg->control_socket, &st->control_fd}};
    for (size_t i = 0; i < 2; i++) {
        if (listener_open_unix(socks[i].what, socks[i].path, st->user.switch_user, st->user.uid,
                               st->user.gid, &p->sockets[i], err, errlen) < 0)
            return -1;
        *socks[i].fd = p->sockets[i].fd;
        if (!(p->socket_paths[i] = strdup(socks[i].path))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* metrics.listen: one socket, for worker 0 (the scrapes are few). */
static int parent_listen_metrics(struct daemon_start *st, char *err, size_t errlen)
{
    const struct config_metrics *m = &st->cfg->metrics;
    if (!m->listen)
        return 0;
    struct config_listener l = {
        .name = "metrics", .address = (char *)m->address, .port = m->port, .family = m->family};
    return listener_open(&l, 1, &st->metrics_fd, err, errlen);
}

/* The engine: its own process from here on, with two channels to the parent: control
 * (configurations) and local delivery requests (core/local_agent.h). */
static int parent_fork_engine(struct parent *p, struct daemon_start *st, char *err, size_t errlen)
{
    int sv[2], lv[2];
    if (privsep_pair(sv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    if (privsep_pair(lv) < 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start the engine: fork: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            close(sv[i]);
            close(lv[i]);
        }
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        close(lv[0]);
        if (p->notify >= 0)
            close(p->notify);
        close(p->sigfd);
        st->parent = sv[1];
        st->local_fd = lv[1];
        exit(daemon_run(st));
    }
    close(sv[1]);
    close(lv[1]);
    p->sock = sv[0];
    p->local_sock = lv[0];
    p->engine = pid;
    return 0;
}

/* Start-up as far as the fork of the engine: EX_OK, or a status with `err`. Whatever it
 * hands to the engine (st) is the parent's to release afterwards either way. */
static int parent_start(struct parent *p, const char *config_path, struct daemon_start *st,
                        char *err, size_t errlen)
{
    p->path = parent_abspath(config_path);
    if (config_path && !p->path) {
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    if (!(st->cfg = parent_read(p->path, &st->files, err, errlen)))
        return EX_CONFIG;
    const struct config *cfg = st->cfg;
    log_configure(cfg->log_ident, p->log_targets);
    log_set_format(config_log_format(cfg));
    if (privdrop_resolve(cfg->run_as, &st->user, err, errlen) < 0 || engine_probe(err, errlen) < 0)
        return EX_OSERR;
    if (!p->foreground && parent_detach(p, err, errlen) < 0)
        return EX_OSERR;
    log_info("starting ringmaild %s: config=%s, hostname=%s, workers=%u", RINGMAIL_VERSION,
             cfg->source, cfg->hostname, cfg->workers);
    parent_raise_nofile();

    struct spool_settings ss = {
        .dir = cfg->spool,
        .owner = st->user.uid,
        .group = st->user.gid,
        .chown = st->user.switch_user,
        .min_free_blocks = cfg->min_free_blocks,
        .hash_depth = cfg->queue.hash_depth,
    };
    if (!(st->spool = spool_open(&ss, err, errlen)))
        return errno == EWOULDBLOCK ? EX_TEMPFAIL : EX_CANTCREAT;
    if (pidfile_write(cfg->pid_file, err, errlen) < 0)
        return EX_CANTCREAT;
    if (!(p->pid_file = strdup(cfg->pid_file))) {
        pidfile_remove(cfg->pid_file);
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    if (!(st->listen_fds = parent_listen(cfg, err, errlen)) ||
        parent_listen_unix(p, st, err, errlen) < 0 || parent_listen_metrics(st, err, errlen) < 0 ||
        submission_maildrop_prepare(cfg, geteuid() == 0, st->user.uid, err, errlen) < 0)
        return EX_OSERR;
    st->config_path = p->path;
    st->foreground = p->foreground;
    if (parent_fork_engine(p, st, err, errlen) < 0)
        return EX_OSERR;
    return EX_OK;
}

/* What the parent keeps of what it handed the engine: the configuration, for the local
 * delivery agents (the engine has its own copy of everything). */
static void parent_release(struct parent *p, struct daemon_start *st)
{
    if (st->listen_fds) {
        for (size_t i = 0; i < st->cfg->n_listen; i++) {
            for (unsigned w = 0; st->listen_fds[i] && w < st->cfg->workers; w++)
                close(st->listen_fds[i][w]);
            free(st->listen_fds[i]);
        }
        free(st->listen_fds);
        st->listen_fds = NULL;
    }
    if (st->submission_fd >= 0)
        close(st->submission_fd);
    if (st->control_fd >= 0)
        close(st->control_fd);
    if (st->metrics_fd >= 0)
        close(st->metrics_fd);
    st->submission_fd = st->control_fd = st->metrics_fd = -1;
    config_free(p->cfg);
    p->cfg = st->cfg;
    st->cfg = NULL;
    if (p->cfg && p->agents)
        local_agents_configure(p->agents, p->cfg);
    parent_watch_set(p);
    fileset_free(st->files);
    st->files = NULL;
}

/* The summary at the end: how long it ran and what it went through. */
static void parent_summary(const struct parent *p, int status)
{
    char uptime[48];
    summary_duration(uptime, sizeof(uptime), time(NULL) - p->started);
    log_info("ringmaild stopped: uptime=%s, reloads=%u, failed_reloads=%u, status=%d", uptime,
             p->reloads, p->reloads_failed, status);
}

int parent_run(const char *config_path, bool foreground, bool syslog)
{
    char err[1024] = "";
    /* Detached, the terminal too until the engine serves (daemon_leave_terminal). */
    unsigned targets = !foreground ? LOG_TO_STDERR | LOG_TO_SYSLOG
                       : syslog    ? LOG_TO_SYSLOG
                                   : LOG_TO_STDERR;
    struct parent p = {.sock = -1,
                       .local_sock = -1,
                       .sigfd = -1,
                       .notify = -1,
                       .foreground = foreground,
                       .log_targets = targets,
                       .started = time(NULL)};
    struct daemon_start st = {
        .parent = -1, .local_fd = -1, .submission_fd = -1, .control_fd = -1, .metrics_fd = -1};

    log_configure(NULL, LOG_TO_STDERR);
    /* Taken synchronously (signalfd); blocked before the fork, so the engine's threads
     * inherit the mask too. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    p.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (p.sigfd < 0)
        snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
    else if (!(p.agents = local_agents_new(targets)) || !(p.watch = filewatch_new()))
        snprintf(err, sizeof(err), "out of memory");
    int status =
        !p.agents || !p.watch ? EX_OSERR : parent_start(&p, config_path, &st, err, sizeof(err));
    parent_release(&p, &st);
    if (status == EX_OK) {
        status = parent_loop(&p);
        parent_summary(&p, status);
    } else {
        log_error("%s", err);
    }
    parent_notify(&p, status);
    for (size_t i = 0; i < 2; i++) {
        listener_unix_remove(p.socket_paths[i], &p.sockets[i]);
        free(p.socket_paths[i]);
    }
    if (p.pid_file)
        pidfile_remove(p.pid_file);
    if (st.spool)
        spool_close(st.spool);
    if (p.sock >= 0)
        close(p.sock);
    if (p.local_sock >= 0)
        close(p.local_sock);
    local_agents_free(p.agents);
    filewatch_free(p.watch);
    config_free(p.cfg);
    if (p.sigfd >= 0)
        close(p.sigfd);
    free(p.pid_file);
    free(p.path);
    log_close();
    return status;
}
