#include "core/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "core/privsep.h"
#include "core/queuerun.h"
#include "core/session.h"
#include "core/summary.h"
#include "core/version.h"
#include "delivery/dest.h"
#include "core/accept_throttle.h"
#include "policy/clientrate.h"
#include "policy/sasl.h"
#include "queue/mailstats.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/netaddr.h"

/* Descriptors a connection may hold at once: its socket, and the data and envelope files of
 * the message it is committing. */
#define DAEMON_FDS_PER_CONNECTION 3
/* Descriptors besides connections: listeners, rings, eventfds, the spool, the log, the
 * parent's socket, a reload's files. */
#define DAEMON_FDS_RESERVED 64

struct runconf *daemon_current(struct daemon *d)
{
    pthread_mutex_lock(&d->current_lock);
    struct runconf *rc = runconf_ref(d->current);
    pthread_mutex_unlock(&d->current_lock);
    return rc;
}

/* A connection limit that must fit in `fit` connections' descriptors: lowered, with a
 * warning, when it does not (0, no limit, never fits). */
static void daemon_fit_limit(const char *key, unsigned *limit, uint64_t fit, rlim_t nofile)
{
    if (*limit && *limit <= fit)
        return;
    char want[32];
    snprintf(want, sizeof(want), "%u", *limit);
    log_warn("%s %s needs up to %d file descriptors per connection, and this process may open "
             "%llu (RLIMIT_NOFILE): using %llu; raise the hard limit (ulimit -Hn, systemd's "
             "LimitNOFILE=) for more",
             key, *limit ? want : "0 (no limit)", DAEMON_FDS_PER_CONNECTION,
             (unsigned long long)nofile, (unsigned long long)fit);
    *limit = (unsigned)fit;
}

/* limits.connections and submission.connections must fit in the descriptors the process
 * may open, or the last clients would make spool files fail with EMFILE: lowered, with a
 * warning, until they do (at start-up and at every reload; the parent raised the soft limit
 * to the hard one). The local callers' slots come first, at most a quarter of them. */
static void daemon_fit_connections(struct config *cfg, unsigned listeners)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    uint64_t reserved =
        DAEMON_FDS_RESERVED + (uint64_t)listeners * cfg->workers + 4ull * cfg->workers;
    uint64_t fit =
        rl.rlim_cur > reserved ? (rl.rlim_cur - reserved) / DAEMON_FDS_PER_CONNECTION : 0;
    daemon_fit_limit("submission.connections", &cfg->submission_connections, fit / 4 ? fit / 4 : 1,
                     rl.rlim_cur);
    fit = fit > cfg->submission_connections ? fit - cfg->submission_connections : 1;
    daemon_fit_limit("limits.connections", &cfg->max_connections, fit, rl.rlim_cur);
}

/* What a reload cannot change without a restart: say so rather than pretend. */
static void daemon_warn_restart_only(const struct config *old, const struct config *neu)
{
    bool listeners_same = old->n_listen == neu->n_listen;
    for (size_t i = 0; listeners_same && i < old->n_listen; i++)
        listeners_same = strcmp(old->listen[i].address, neu->listen[i].address) == 0 &&
                         old->listen[i].port == neu->listen[i].port &&
                         strcmp(old->listen[i].name, neu->listen[i].name) == 0;
    if (!listeners_same)
        log_warn("reload: changes to 'listen' take effect after a restart");
    if (old->workers != neu->workers)
        log_warn("reload: changes to 'workers' take effect after a restart");
    if (strcmp(old->run_as, neu->run_as) != 0)
        log_warn("reload: changes to 'run_as' take effect after a restart");
    if (strcmp(old->spool, neu->spool) != 0)
        log_warn("reload: changes to 'spool' take effect after a restart");
    if (strcmp(old->pid_file, neu->pid_file) != 0)
        log_warn("reload: changes to 'pid_file' take effect after a restart");
    if (strcmp(old->statistics_file, neu->statistics_file) != 0 && mailstats_attached())
        log_warn("reload: changes to 'statistics_file' take effect after a restart");
    if (old->min_free_blocks != neu->min_free_blocks)
        log_warn("reload: changes to 'limits.min_free_blocks' take effect after a restart");
    if (strcmp(old->submission_socket, neu->submission_socket) != 0 ||
        strcmp(old->control_socket, neu->control_socket) != 0 ||
        strcmp(old->maildrop, neu->maildrop) != 0 ||
        strcmp(old->maildrop_group, neu->maildrop_group) != 0)
        log_warn("reload: changes to 'submission.socket', 'submission.control_socket', "
                 "'submission.maildrop' and 'submission.maildrop_group' take effect after a "
                 "restart");
    if (!old->metrics.listen != !neu->metrics.listen ||
        (old->metrics.listen && strcmp(old->metrics.listen, neu->metrics.listen) != 0))
        log_warn("reload: changes to 'metrics.listen' take effect after a restart");
    if (old->queue.hash_depth != neu->queue.hash_depth)
        log_warn("reload: changes to 'queue.hash_depth' take effect after a restart");
    bool dns_same = old->dns.n_servers == neu->dns.n_servers &&
                    old->dns.timeout == neu->dns.timeout && old->dns.tries == neu->dns.tries;
    for (size_t i = 0; dns_same && i < old->dns.n_servers; i++)
        dns_same = strcmp(old->dns.servers[i], neu->dns.servers[i]) == 0;
    if (!dns_same)
        log_warn("reload: changes to 'dns' take effect after a restart");
}

/* What the configuration asks for that the daemon does not do yet (config->warnings). */
static void daemon_log_warnings(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_warnings; i++)
        log_warn("%s", cfg->warnings[i]);
}

/* A generation from what the parent read: the configuration, its maps and its TLS files. */
static struct runconf *daemon_generation(struct daemon *d, struct config *cfg,
                                         struct fileset *files, unsigned generation, char *err,
                                         size_t errlen)
{
    daemon_fit_connections(cfg, (unsigned)cfg->n_listen);
    struct runconf *rc = runconf_new(cfg, generation, d->workers, d->tls_libs, files, err, errlen);
    if (rc && session_auth_configure(rc, err, errlen) < 0) {
        runconf_unref(rc);
        return NULL;
    }
    if (rc) {
        const struct config_delivery *dc = &rc->cfg->delivery;
        struct dest_settings ds = {dc->dest_concurrency, dc->dest_rate, dc->host_status, 0};
        dest_table_configure(d->dests, &ds);
        for (unsigned i = 0; i < d->workers; i++)
            rc->outbound[i].dest = d->dests;
        daemon_log_warnings(rc->cfg);
        summary_certs(rc->tls ? rc->tls[0] : NULL);
    }
    return rc;
}

/* Whether the configuration in `fd` now serves. */
static bool daemon_reload(struct daemon *d, const char *path, int fd, unsigned *generation)
{
    char err[1024];
    struct fileset *files = fileset_from_fd(fd, err, sizeof(err));
    struct config *cfg = files ? config_load(path, files, err, sizeof(err)) : NULL;
    struct runconf *rc =
        cfg ? daemon_generation(d, cfg, files, *generation + 1, err, sizeof(err)) : NULL;
    fileset_free(files);
    if (!rc) {
        log_error("reload failed, keeping the running configuration: %s", err);
        return false;
    }
    ++*generation;
    log_set_ident(rc->cfg->log_ident);
    log_set_format(config_log_format(rc->cfg));
    pthread_mutex_lock(&d->current_lock);
    struct runconf *old = d->current;
    d->current = rc;
    pthread_mutex_unlock(&d->current_lock);
    daemon_warn_restart_only(old->cfg, rc->cfg);
    /* sendmail counts once its StatusFile exists: a file made since the start counts now */
    mailstats_attach(rc->cfg->statistics_file);
    summary_changes(old->cfg, rc->cfg);
    /* the sockets stay the start's; a reload may change what they offer */
    const struct config *lc = rc->cfg->n_listen == old->cfg->n_listen ? rc->cfg : old->cfg;
    for (size_t i = 0; i < lc->n_listen; i++)
        summary_listener(&lc->listen[i], d->workers, rc->tls != NULL);
    runconf_unref(old);
    engine_post(d->engine, DAEMON_MSG_RELOAD);
    log_info("configuration reloaded from %s (generation %u)", rc->cfg->source, rc->generation);
    return true;
}

static uint64_t daemon_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int daemon_signal(int sigfd)
{
    struct signalfd_siginfo si;
    ssize_t n = read(sigfd, &si, sizeof(si));
    return n == (ssize_t)sizeof(si) ? (int)si.ssi_signo : 0;
}

/* SIGTERM: workers stop accepting and let transactions finish; after the grace period
 * whatever is left is closed (a message without its 250 may be sent again by its
 * client, which the no-loss contract allows). */
static void daemon_drain(struct daemon *d, int sigfd, uint32_t grace_ms)
{
    log_info("stopping: no new connections, %u ms for transactions in flight", grace_ms);
    engine_post(d->engine, DAEMON_MSG_DRAIN);
    uint64_t deadline = daemon_now_ms() + grace_ms;
    while (atomic_load(&d->workers_running) > 0) {
        uint64_t now = daemon_now_ms();
        if (now >= deadline) {
            log_warn("grace period over: closing %u remaining connection(s)",
                     connlimit_total(d->conns));
            engine_post(d->engine, DAEMON_MSG_EXIT);
            break;
        }
        struct pollfd p = {sigfd, POLLIN, 0};
        if (poll(&p, 1, deadline - now < 100 ? (int)(deadline - now) : 100) > 0) {
            int sig = daemon_signal(sigfd);
            if (sig == SIGINT || sig == SIGTERM) {
                log_warn("second stop signal: closing now");
                engine_post(d->engine, DAEMON_MSG_EXIT);
                break;
            }
        }
    }
}

/* A unix socket goes to worker 0 alone: SO_REUSEPORT does not spread them. */
static int daemon_listen_unix(struct daemon *d, unsigned listener, int *fd, const char *path,
                              char *err, size_t errlen)
{
    if (*fd < 0)
        return 0;
    if (engine_listen(d->engine, listener, fd, 1) < 0) {
        snprintf(err, errlen, "unix socket %s: cannot hand it to the engine", path);
        return -1;
    }
    *fd = -1; /* the engine owns it now */
    log_info("listening: unix socket %s", path);
    return 0;
}

/* metrics.listen: worker 0 answers the scrapes (core/metrics_http.h). */
static int daemon_listen_metrics(struct daemon *d, const struct config *cfg, int *fd, char *err,
                                 size_t errlen)
{
    if (*fd < 0)
        return 0;
    if (engine_listen(d->engine, DAEMON_LISTENER_METRICS, fd, 1) < 0) {
        snprintf(err, errlen, "metrics.listen %s: cannot hand it to the engine",
                 cfg->metrics.listen);
        return -1;
    }
    *fd = -1; /* the engine owns it now */
    log_info("listening: metrics on http://%s/metrics", cfg->metrics.listen);
    if (!netaddr_is_loopback(cfg->metrics.address))
        log_warn("metrics.listen %s is not a loopback address: whoever reaches it reads the "
                 "server's counters (docs/metrics.md)",
                 cfg->metrics.listen);
    return 0;
}

static int daemon_listen(struct daemon *d, const struct config *cfg, struct daemon_start *st,
                         char *err, size_t errlen)
{
    int **fds = st->listen_fds;
    d->listener_names = calloc(cfg->n_listen, sizeof(char *));
    if (!d->listener_names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        const struct config_listener *l = &cfg->listen[i];
        if (!(d->listener_names[i] = strdup(l->name)) ||
            engine_listen(d->engine, (unsigned)i, fds[i], cfg->workers) < 0) {
            snprintf(err, errlen, "listener %s: cannot hand it to the engine", l->name);
            return -1;
        }
        free(fds[i]);
        fds[i] = NULL; /* the engine owns the sockets now */
        summary_listener(l, cfg->workers, d->current->tls != NULL);
    }
    return daemon_listen_unix(d, DAEMON_LISTENER_SUBMISSION, &st->submission_fd,
                              cfg->submission_socket, err, errlen) < 0 ||
                   daemon_listen_unix(d, DAEMON_LISTENER_CONTROL, &st->control_fd,
                                      cfg->control_socket, err, errlen) < 0 ||
                   daemon_listen_metrics(d, cfg, &st->metrics_fd, err, errlen) < 0
               ? -1
               : 0;
}

static void daemon_free(struct daemon *d, size_t n_listeners)
{
    /* the workers have ended (engine_join): their exchanges are all let go; before
     * engine_free, as a helper thread may still be posting to the engine */
    sasl_pool_free(d->sasl);
    if (d->engine)
        engine_free(d->engine);
    if (d->listener_names) {
        for (size_t i = 0; i < n_listeners; i++)
            free(d->listener_names[i]);
        free(d->listener_names);
    }
    if (d->spool)
        spool_close(d->spool);
    connlimit_free(d->conns);
    connlimit_free(d->local_conns);
    clientrate_free(d->rates);
    accept_throttle_free(d->throttle);
    queuerun_backlog_free(d);
    dest_table_free(d->dests);
    runconf_unref(d->current);
    /* Every worker has ended: the libraries their contexts used may go (tls_lib_new). */
    for (unsigned i = 0; d->tls_libs && i < d->workers; i++)
        tls_lib_free(d->tls_libs[i]);
    free(d->tls_libs);
    tls_ctx_retired_free();
    sasl_teardown();
    mailstats_detach(); /* no worker counts any more */
    metrics_teardown();
    pthread_mutex_destroy(&d->current_lock);
}

void daemon_leave_terminal(void)
{
    log_configure(NULL, LOG_TO_SYSLOG);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return;
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    close(null);
}

static int daemon_start(struct daemon *d, struct daemon_start *st, unsigned *generation, char *err,
                        size_t errlen)
{
    d->spool = st->spool;
    d->local_fd = st->local_fd;
    st->spool = NULL;
    if (privdrop_apply(&st->user, err, errlen) < 0)
        return EX_OSERR;
    log_info("engine running as user %s (uid %u)", st->user.name, (unsigned)getuid());
    /* SASL runs in the engine, as its user (docs/auth.md: group sasl); its configuration
     * directory is read once, at start */
    bool sasl = sasl_setup(st->cfg->auth.sasl_config_dir, err, errlen) == 0;
    if (!sasl && st->cfg->auth.mechanisms.n)
        return EX_SOFTWARE;
    if (!sasl) /* AUTH is not configured: mail goes on without it */
        log_warn("%s; SMTP AUTH cannot be offered", err);

    d->workers = st->cfg->workers;
    d->tls_libs = calloc(d->workers, sizeof(*d->tls_libs));
    for (unsigned i = 0; d->tls_libs && i < d->workers; i++)
        if (!(d->tls_libs[i] = tls_lib_new(err, errlen)))
            return EX_SOFTWARE;
    if (!d->tls_libs || !(d->conns = connlimit_new()) || !(d->local_conns = connlimit_new()) ||
        !(d->rates = clientrate_new()) || !(d->throttle = accept_throttle_new(st->cfg->n_listen)) ||
        !(d->dests = dest_table_new(&(struct dest_settings){0}))) {
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    /* The generation owns the configuration from here, whatever the outcome. */
    d->current = daemon_generation(d, st->cfg, st->files, *generation, err, errlen);
    st->cfg = NULL;
    fileset_free(st->files);
    st->files = NULL;
    if (!d->current)
        return EX_CONFIG;
    const struct config *cfg = d->current->cfg;

    if (queuerun_recover(d, err, errlen) < 0)
        return EX_IOERR;
    mailstats_attach(cfg->statistics_file); /* as run_as: the engine writes it */

    /* The engine's own cap only backs up limits.connections (which a reload may raise, and
     * whose 421 the sessions give): the descriptors are the real bound. */
    struct rlimit rl;
    char refuse[320];
    snprintf(refuse, sizeof(refuse), "421 4.3.2 %s Too many open connections\r\n", cfg->hostname);
    struct engine_settings es = {
        .workers = cfg->workers,
        .max_connections = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1000000
                               ? (unsigned)rl.rlim_cur
                               : 1000000,
        .refuse_reply = refuse,
    };
    if (!(d->engine = engine_new(&es, &session_engine_callbacks, err, errlen)) ||
        daemon_listen(d, cfg, st, err, errlen) < 0)
        return EX_OSERR;
    if (metrics_setup(cfg->workers, (const char *const *)d->listener_names, cfg->n_listen,
                      RINGMAIL_VERSION) < 0) {
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    metrics_set_served(cfg->metrics.listen != NULL);
    if (sasl && !(d->sasl = sasl_pool_new(d->engine, d->workers))) {
        snprintf(err, errlen, "SASL: cannot start its helper threads");
        return EX_OSERR;
    }
    session_set_daemon(d);
    atomic_store(&d->workers_running, cfg->workers);
    if (engine_start(d->engine, err, errlen) < 0)
        return EX_OSERR;
    return EX_OK;
}

/* How often the engine tells the parent its traffic counts, when they changed: the
 * service manager's STATUS= (core/service.h) is the parent's to send. */
#define DAEMON_TRAFFIC_MS 5000

static void daemon_send_traffic(int parent, struct metrics_totals *sent)
{
    struct metrics_totals now;
    metrics_totals(&now);
    if (!memcmp(&now, sent, sizeof(now)))
        return;
    if (privsep_send_value(parent, PRIVSEP_ACCEPTED, now.messages_accepted) < 0 ||
        privsep_send_value(parent, PRIVSEP_SESSIONS, now.connections_open) < 0 ||
        privsep_send_value(parent, PRIVSEP_QUEUED, now.queue_size) < 0) {
        log_warn("cannot send the traffic counts to the privileged parent: %s", strerror(errno));
        return;
    }
    *sent = now;
}

/* The main thread's wait: stop signals, SIGHUP (passed to the parent, which alone may read
 * the files), the parent's messages, and every DAEMON_TRAFFIC_MS the traffic counts. */
static void daemon_wait(struct daemon *d, struct daemon_start *st, int sigfd, unsigned *generation)
{
    struct pollfd p[2] = {{sigfd, POLLIN, 0}, {st->parent, POLLIN, 0}};
    struct metrics_totals sent = {0};
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t since_ms =
            (int64_t)(now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000;
        if (since_ms >= DAEMON_TRAFFIC_MS) {
            daemon_send_traffic(st->parent, &sent);
            last = now;
            since_ms = 0;
        }
        int n = poll(p, 2, (int)(DAEMON_TRAFFIC_MS - since_ms));
        if (n == 0)
            continue;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("engine: poll: %s", strerror(errno));
            break;
        }
        int sig = p[0].revents ? daemon_signal(sigfd) : 0;
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP && privsep_send(st->parent, PRIVSEP_RELOAD_ASK, -1) < 0)
            log_error("SIGHUP: cannot ask the privileged parent for a reload: %s", strerror(errno));
        if (!p[1].revents)
            continue;
        uint32_t type;
        uint64_t value;
        int fd;
        int got = privsep_recv(st->parent, &type, &value, &fd);
        if (got <= 0) {
            /* Without the parent no configuration can be read: finish what is running. */
            log_error("the privileged parent has gone (%s): stopping",
                      got == 0 ? "its socket closed" : strerror(errno));
            break;
        }
        if (type == PRIVSEP_RELOAD && fd >= 0) {
            bool ok = daemon_reload(d, st->config_path, fd, generation);
            if (privsep_send(st->parent, ok ? PRIVSEP_RELOADED : PRIVSEP_RELOAD_FAILED, -1) < 0)
                log_error("cannot tell the privileged parent how the reload ended: %s",
                          strerror(errno));
        } else
            log_warn("engine: unexpected message %u from the parent", type);
        if (fd >= 0)
            close(fd);
    }
}

int daemon_run(struct daemon_start *st)
{
    char err[1024] = "";
    unsigned generation = 1;
    struct daemon d;
    memset(&d, 0, sizeof(d));
    pthread_mutex_init(&d.current_lock, NULL);
    size_t n_listeners = st->cfg->n_listen;
    unsigned workers = st->cfg->workers;
    bool foreground = st->foreground;

    /* The parent blocked these before forking; the workers inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    int status = sigfd < 0 ? EX_OSERR : daemon_start(&d, st, &generation, err, sizeof(err));
    if (sigfd < 0)
        snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
    if (status != EX_OK) {
        log_error("%s", err);
    } else {
        log_info("ready");
        if (privsep_send(st->parent, PRIVSEP_READY, -1) < 0)
            log_error("cannot tell the privileged parent that the engine is ready: %s",
                      strerror(errno));
        if (!foreground)
            daemon_leave_terminal();
        /* after READY: the parent starts the pickup on the pass's end, which must follow */
        queuerun_recover_start(&d, st->parent);
        daemon_wait(&d, st, sigfd, &generation);
        queuerun_recover_stop(&d);
        struct runconf *rc = daemon_current(&d);
        uint32_t grace = rc->cfg->shutdown_grace_ms;
        runconf_unref(rc);
        daemon_drain(&d, sigfd, grace);
        engine_join(d.engine);
        log_info("stopped");
    }
    config_free(st->cfg);
    fileset_free(st->files);
    if (st->spool)
        spool_close(st->spool);
    for (size_t i = 0; i < n_listeners; i++) {
        for (unsigned j = 0; st->listen_fds[i] && j < workers; j++)
            close(st->listen_fds[i][j]);
        free(st->listen_fds[i]);
    }
    if (st->submission_fd >= 0)
        close(st->submission_fd);
    if (st->control_fd >= 0)
        close(st->control_fd);
    if (st->metrics_fd >= 0)
        close(st->metrics_fd);
    daemon_free(&d, n_listeners);
    if (sigfd >= 0)
        close(sigfd);
    close(st->parent);
    if (st->local_fd >= 0)
        close(st->local_fd);
    return status;
}
