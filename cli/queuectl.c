/*
 * The control-socket client and the offline queue operations (cli/queuectl.h).
 *
 * Offline, the files are changed exactly as the daemon changes them (docs/queue.md,
 * "Delivery: loading, updating and removing a message"): fixed-width fields rewritten in
 * place with one pwrite and an fsync, so a crash leaves each field old or new, never a
 * mix; a removal unlinks the qf first, so a crash never leaves a qf without its data.
 * The spool lock keeps a daemon from starting (and recovering) while we write.
 */
#include "cli/queuectl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/spool_read.h"
#include "queue/qid.h"

/* How long a request may take: the daemon answers after every worker has. WATCH has no
 * limit (an attempt ends when its connection times out, minutes at most). */
#define QUEUECTL_TIMEOUT_S 120
#define QUEUECTL_LOCK_NAME "ringmail.lock"

struct queuectl_answer {
    int code; /* 0 for OK, else ERR's sysexits code */
    char text[512];
};

typedef void (*queuectl_data_fn)(void *arg, const char *text);

/* --- the protocol --- */

/* Sends `line` (no LF) and reads the answer, passing each data line's text to `fn`. 0 with
 * `ans` filled; -1 with errno otherwise, `*connected` telling whether the connect worked
 * (ENOENT or ECONNREFUSED before it: the daemon is down; EPROTO after it: the daemon
 * closed without an answer; EAGAIN: no answer in time). */
static int queuectl_request(const char *path, const char *line, int timeout_s, queuectl_data_fn fn,
                            void *arg, struct queuectl_answer *ans, bool *connected)
{
    *connected = false;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *connected = true;
    struct timeval tv = {.tv_sec = timeout_s};
    if (timeout_s > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    size_t len = strlen(line);
    char *req = malloc(len + 1);
    if (!req) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    memcpy(req, line, len);
    req[len] = '\n';
    size_t sent = 0;
    while (sent <= len) {
        ssize_t w = send(fd, req + sent, len + 1 - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int saved = errno;
            free(req);
            close(fd);
            errno = saved;
            return -1;
        }
        sent += (size_t)w;
    }
    free(req);
    FILE *f = fdopen(fd, "r");
    if (!f) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int r = -1;
    errno = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        if (buf[0] == '+') {
            if (fn)
                fn(arg, buf[1] == ' ' ? buf + 2 : buf + 1);
            continue;
        }
        if (!strncmp(buf, "OK", 2) && (buf[2] == '\0' || buf[2] == ' ')) {
            ans->code = 0;
            snprintf(ans->text, sizeof(ans->text), "%s", buf[2] ? buf + 3 : "");
            r = 0;
        } else if (!strncmp(buf, "ERR ", 4)) {
            char *end;
            long code = strtol(buf + 4, &end, 10);
            ans->code = code > 0 && code < 256 ? (int)code : EX_SOFTWARE;
            snprintf(ans->text, sizeof(ans->text), "%s", *end == ' ' ? end + 1 : end);
            r = 0;
        } else {
            errno = EPROTO;
        }
        break;
    }
    if (r < 0 && errno == 0)
        errno = EPROTO;
    int saved = errno;
    free(buf);
    fclose(f);
    errno = saved;
    return r;
}

static bool queuectl_daemon_down(bool connected, int e)
{
    return !connected && (e == ENOENT || e == ECONNREFUSED);
}

/* A request that got no answer: said once on `err`, with the exit code. */
static int queuectl_no_answer(FILE *err, const char *prog, const char *path, bool connected, int e)
{
    if (queuectl_daemon_down(connected, e)) {
        fprintf(err, "%s: ringmaild is not running (no control socket at %s)\n", prog, path);
        return EX_UNAVAILABLE;
    }
    if (!connected) {
        fprintf(err, "%s: cannot connect to %s: %s\n", prog, path, strerror(e));
        return e == EACCES ? EX_NOPERM : EX_UNAVAILABLE;
    }
    if (e == EAGAIN || e == EWOULDBLOCK) {
        fprintf(err, "%s: ringmaild did not answer on %s within %d s\n", prog, path,
                QUEUECTL_TIMEOUT_S);
        return EX_TEMPFAIL;
    }
    if (e == EPROTO) {
        fprintf(err, "%s: ringmaild closed %s without an answer\n", prog, path);
        return EX_PROTOCOL;
    }
    fprintf(err, "%s: %s: %s\n", prog, path, strerror(e));
    return EX_IOERR;
}

static int queuectl_refused(FILE *err, const char *prog, const struct queuectl_answer *ans)
{
    fprintf(err, "%s: %s\n", prog, ans->text);
    return ans->code;
}

static void queuectl_print_data(void *arg, const char *text)
{
    fprintf(arg, "%s\n", text);
}

/* --- targets --- */

static bool queuectl_token_ok(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t <= ' ' || *t == 0x7f)
            return false;
    return true;
}

static bool queuectl_is_filter(const char *t)
{
    if (*t == '!')
        t++;
    return (*t == 'R' || *t == 'S' || *t == 'I') && t[1] != '\0';
}

bool queuectl_target_valid(const char *t)
{
    return *t && queuectl_token_ok(t) &&
           (queuectl_is_filter(t) || qid_valid(t) || !strcmp(t, "ALL"));
}

static bool queuectl_filter_matches(const struct envelope *e, const char *f)
{
    bool negate = *f == '!';
    if (negate)
        f++;
    char kind = *f++;
    bool hit = false;
    if (kind == 'S')
        hit = e->sender && strcasestr(e->sender, f);
    else if (kind == 'I')
        hit = strcasestr(e->qid, f) != NULL;
    else
        for (size_t i = 0; i < e->n_rcpts && !hit; i++)
            hit = envelope_rcpt_open(e->rcpts[i].state) && e->rcpts[i].addr &&
                  strcasestr(e->rcpts[i].addr, f);
    return hit != negate;
}

bool queuectl_matches(const struct envelope *e, const char *const *targets, size_t n)
{
    bool all = false, any_qid = false, listed = false;
    for (size_t i = 0; i < n; i++) {
        const char *t = targets[i];
        if (queuectl_is_filter(t)) {
            if (!queuectl_filter_matches(e, t))
                return false;
        } else if (!strcmp(t, "ALL")) {
            all = true;
        } else {
            any_qid = true;
            listed = listed || !strcmp(t, e->qid);
        }
    }
    return all || !any_qid || listed;
}

/* --- hoststat --- */

bool queuectl_hoststat_line(FILE *out, const char *row, time_t now)
{
    const char *t1 = strchr(row, '\t');
    const char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    const char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
    if (!t3 || t1 == row)
        return false;
    bool up = (size_t)(t2 - t1 - 1) == 2 && !strncmp(t1 + 1, "up", 2);
    bool down = (size_t)(t2 - t1 - 1) == 4 && !strncmp(t1 + 1, "down", 4);
    char *end;
    long long when = strtoll(t2 + 1, &end, 10);
    if ((!up && !down) || end != t3)
        return false;
    /* sendmail's pintvl(..., brief): days as "N+", then hh:mm:ss */
    long long iv = now > when ? (long long)now - when : 0;
    int se = (int)(iv % 60), mi = (int)(iv / 60 % 60), hr = (int)(iv / 3600 % 24);
    long long dy = iv / 86400;
    char ago[40];
    if (dy > 0)
        snprintf(ago, sizeof(ago), "%lld+%02d:%02d:%02d", dy, hr, mi, se);
    else
        snprintf(ago, sizeof(ago), "%02d:%02d:%02d", hr, mi, se);
    fprintf(out, " %-39.*s %12s ", (int)(t1 - row), row, ago);
    const char *reason = t3 + 1;
    fprintf(out, "%.25s\n", *reason ? reason : up ? "OK" : "Deferred");
    return true;
}

struct queuectl_hoststat_ctx {
    FILE *out;
    time_t now;
    unsigned rows;
};

static void queuectl_hoststat_data(void *arg, const char *text)
{
    struct queuectl_hoststat_ctx *c = arg;
    if (c->rows++ == 0)
        fputs(" -------------- Hostname --------------- How long ago ---------Results---------\n",
              c->out);
    if (!queuectl_hoststat_line(c->out, text, c->now))
        fprintf(c->out, " %s\n", text);
}

int queuectl_hoststat(const struct config *cfg, bool purge, FILE *out, FILE *err)
{
    const char *prog = purge ? "purgestat" : "hoststat";
    struct queuectl_hoststat_ctx ctx = {.out = out, .now = time(NULL)};
    struct queuectl_answer ans;
    bool connected;
    if (queuectl_request(cfg->control_socket, purge ? "PURGESTAT" : "HOSTSTAT", QUEUECTL_TIMEOUT_S,
                         purge ? NULL : queuectl_hoststat_data, &ctx, &ans, &connected) < 0)
        return queuectl_no_answer(err, prog, cfg->control_socket, connected, errno);
    return ans.code ? queuectl_refused(err, prog, &ans) : EX_OK;
}

/* --- flush and watch --- */

/* Appends " tok" to the request line; -1 if the line would pass QUEUECTL_LINE_MAX. */
static int queuectl_line_add(char *line, size_t *len, const char *tok)
{
    size_t t = strlen(tok);
    if (*len + 1 + t + 1 > QUEUECTL_LINE_MAX)
        return -1;
    line[(*len)++] = ' ';
    memcpy(line + *len, tok, t + 1);
    *len += t;
    return 0;
}

int queuectl_flush_filters(const struct config *cfg, const char *prog, const char *const *filters,
                           size_t n, bool quiet, FILE *out, FILE *err)
{
    char line[QUEUECTL_LINE_MAX];
    size_t len = (size_t)snprintf(line, sizeof(line), "FLUSH");
    for (size_t i = 0; i < n; i++) {
        if (!queuectl_token_ok(filters[i]) || !queuectl_is_filter(filters[i])) {
            fprintf(err,
                    "%s: %s: not a queue filter (R, S or I, maybe after '!', then text "
                    "without white space)\n",
                    prog, filters[i]);
            return EX_USAGE;
        }
        if (queuectl_line_add(line, &len, filters[i]) < 0) {
            fprintf(err, "%s: too many queue filters\n", prog);
            return EX_USAGE;
        }
    }
    struct queuectl_answer ans;
    bool connected;
    if (queuectl_request(cfg->control_socket, line, QUEUECTL_TIMEOUT_S, NULL, NULL, &ans,
                         &connected) < 0)
        return queuectl_no_answer(err, prog, cfg->control_socket, connected, errno);
    if (ans.code)
        return queuectl_refused(err, prog, &ans);
    if (!quiet)
        fprintf(out, "%s\n", ans.text);
    return EX_OK;
}

char **queuectl_filter_tokens(const struct sendmail_args *a)
{
    char **tokens = calloc(a->n_queue_filters + 1, sizeof(*tokens));
    for (size_t i = 0; tokens && i < a->n_queue_filters; i++) {
        const struct sendmail_queue_filter *f = &a->queue_filters[i];
        if (asprintf(&tokens[i], "%s%c%s", f->negate ? "!" : "", f->kind, f->value) < 0) {
            tokens[i] = NULL;
            queuectl_filter_tokens_free(tokens);
            return NULL;
        }
    }
    return tokens;
}

void queuectl_filter_tokens_free(char **tokens)
{
    for (size_t i = 0; tokens && tokens[i]; i++)
        free(tokens[i]);
    free(tokens);
}

/* The messages a FLUSH with `filters` schedules: open recipients, not held, selected. */
static size_t queuectl_due_ids(const struct spool_read_list *l, const char *const *filters,
                               size_t n, const char **ids)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct envelope *e = &l->msgs[i].env;
        bool open = false;
        for (size_t j = 0; j < e->n_rcpts && !open; j++)
            open = envelope_rcpt_open(e->rcpts[j].state);
        if (open && e->next_attempt != ENVELOPE_NEXT_HELD && queuectl_matches(e, filters, n))
            ids[k++] = e->qid;
    }
    return k;
}

/* sendmail -qf: the run in the foreground. The daemon delivers (it owns the queue); the
 * command waits for each scheduled message's attempt to end (WATCH), showing its delivery
 * lines with -v. Which messages those are needs the queue's files: a caller who may not
 * read them (not root or run_as) gets the run started and is told it does not wait. */
static int queuectl_flush_foreground(const struct config *cfg, const char *prog,
                                     const char *const *filters, size_t n, bool verbose, FILE *out,
                                     FILE *err)
{
    struct spool_read_list l = {0};
    char why[512];
    bool readable = spool_read_allowed(cfg->run_as, geteuid()) &&
                    spool_read_all(cfg->spool, &l, why, sizeof(why)) == 0;
    const char **ids = readable ? calloc(l.n + 1, sizeof(*ids)) : NULL;
    size_t k = ids ? queuectl_due_ids(&l, filters, n, ids) : 0;
    int rc = queuectl_flush_filters(cfg, prog, filters, n, !verbose, out, err);
    if (rc == EX_OK && !ids)
        fprintf(err,
                "%s: -qf: the queue run was started; waiting for it needs read access "
                "to the queue (root or %s)\n",
                prog, cfg->run_as);
    FILE *shown = verbose ? out : fopen("/dev/null", "w");
    for (size_t i = 0; rc == EX_OK && shown && i < k; i++) {
        int w = queuectl_watch(cfg, ids[i], shown);
        if (w != EX_OK && w != EX_UNAVAILABLE)
            rc = w;
    }
    if (shown && shown != out)
        fclose(shown);
    free(ids);
    spool_read_list_free(&l);
    return rc;
}

int queuectl_flush(const struct config *cfg, const struct sendmail_args *a, FILE *out, FILE *err)
{
    const char *prog = a->progname ? a->progname : "sendmail";
    char **tokens = queuectl_filter_tokens(a);
    if (!tokens) {
        fprintf(err, "%s: out of memory\n", prog);
        return EX_OSERR;
    }
    const char *const *filters = (const char *const *)tokens;
    size_t n = a->n_queue_filters;
    int rc;
    if (a->unquarantine) /* sendmail -Q -qI...: the release ringmail-queue does */
        rc = queuectl_change(cfg, prog, QUEUECTL_RELEASE, filters, n, out, err);
    else if (a->queue_foreground)
        rc = queuectl_flush_foreground(cfg, prog, filters, n, a->verbose, out, err);
    else
        rc = queuectl_flush_filters(cfg, prog, filters, n, !a->verbose, out, err);
    queuectl_filter_tokens_free(tokens);
    return rc;
}

int queuectl_watch(const struct config *cfg, const char *qid, FILE *out)
{
    if (!qid_valid(qid))
        return EX_USAGE;
    char line[8 + QID_LEN];
    snprintf(line, sizeof(line), "WATCH %s", qid);
    struct queuectl_answer ans;
    bool connected;
    if (queuectl_request(cfg->control_socket, line, 0, queuectl_print_data, out, &ans, &connected) <
        0)
        return queuectl_daemon_down(connected, errno) ? EX_UNAVAILABLE : EX_IOERR;
    if (ans.code)
        fprintf(out, "%s\n", ans.text);
    return ans.code;
}

/* --- hold, release, delete, requeue --- */

static const struct {
    const char *verb, *done, *summary;
} queuectl_ops[] = {
    [QUEUECTL_HOLD] = {"HOLD", "held", "Placed on hold"},
    [QUEUECTL_RELEASE] = {"RELEASE", "released", "Released from hold"},
    [QUEUECTL_DELETE] = {"DELETE", "deleted", "Deleted"},
    [QUEUECTL_REQUEUE] = {"REQUEUE", "requeued", "Requeued"},
};

/* One fixed-width field of the qf rewritten in place, then fsynced. */
static int queuectl_write_field(int dirfd, const char *path, size_t off, const char *val,
                                size_t len)
{
    int fd = openat(dirfd, path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(fd, val + done, len - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        done += (size_t)w;
    }
    if (fsync(fd) < 0)
        goto fail;
    return close(fd);
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static int queuectl_write_next(int dirfd, const struct spool_read_msg *m, time_t next)
{
    char v[ENVELOPE_TIME_WIDTH + 1];
    snprintf(v, sizeof(v), "%0*lld", ENVELOPE_TIME_WIDTH, (long long)next);
    return queuectl_write_field(dirfd, m->path, m->env.next_attempt_offset, v, ENVELOPE_TIME_WIDTH);
}

/* qf first, then df (docs/queue.md), then the directory, so the removal is durable before
 * we say "deleted". */
static int queuectl_remove(int dirfd, const struct spool_read_msg *m)
{
    char df[SPOOL_READ_PATH_MAX];
    spool_read_sibling(m->path, "df", df);
    if (unlinkat(dirfd, m->path, 0) < 0 && errno != ENOENT)
        return -1;
    if (unlinkat(dirfd, df, 0) < 0 && errno != ENOENT)
        return -1;
    char dir[SPOOL_READ_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", m->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int fd = openat(dirfd, slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

/* A reason field (the last reason, the quarantine) blanked in place; nothing when the qf
 * has no such record (offset 0). */
static int queuectl_blank_reason(int dirfd, const struct spool_read_msg *m, size_t off)
{
    char blank[ENVELOPE_REASON_WIDTH];
    envelope_reason_format(blank, NULL);
    return off ? queuectl_write_field(dirfd, m->path, off, blank, sizeof(blank)) : 0;
}

/* 1 changed, 0 nothing to do (already held, not held), -1 with errno. */
static int queuectl_apply(int dirfd, enum queuectl_op op, const struct spool_read_msg *m)
{
    bool held = m->env.next_attempt == ENVELOPE_NEXT_HELD;
    switch (op) {
    case QUEUECTL_HOLD:
        return held ? 0 : queuectl_write_next(dirfd, m, ENVELOPE_NEXT_HELD) < 0 ? -1 : 1;
    case QUEUECTL_RELEASE:
        if (!held)
            return 0;
        /* no longer quarantined: the q record blanked first, so a crash in between
         * leaves it held, never due and still called quarantined */
        if (queuectl_blank_reason(dirfd, m, m->env.quarantine_offset) < 0)
            return -1;
        return queuectl_write_next(dirfd, m, 0) < 0 ? -1 : 1;
    case QUEUECTL_DELETE:
        return queuectl_remove(dirfd, m) < 0 ? -1 : 1;
    case QUEUECTL_REQUEUE:
        /* postsuper -r's spirit: due now (a held message too), the attempts kept, the last
         * reason cleared (a qf from before the reason record has none to clear) */
        if (queuectl_blank_reason(dirfd, m, m->env.last_reason_offset) < 0)
            return -1;
        return queuectl_write_next(dirfd, m, 0) < 0 ? -1 : 1;
    }
    return 0;
}

/* The spool's lock, as ringmaild takes it. Created when missing (a spool the daemon never
 * ran on), owned like the spool so the daemon can open it later. -1 after saying why. */
static int queuectl_lock(const char *spool, int dirfd, const char *prog, FILE *err, int *rc)
{
    int fd =
        openat(dirfd, QUEUECTL_LOCK_NAME, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        struct stat st;
        if (geteuid() == 0 && fstat(dirfd, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
            fprintf(err, "%s: %s/%s: chown: %s\n", prog, spool, QUEUECTL_LOCK_NAME,
                    strerror(errno));
    } else if (errno == EEXIST) {
        fd = openat(dirfd, QUEUECTL_LOCK_NAME, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        fprintf(err, "%s: %s/%s: %s\n", prog, spool, QUEUECTL_LOCK_NAME, strerror(errno));
        *rc = errno == EACCES ? EX_NOPERM : EX_IOERR;
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            fprintf(err,
                    "%s: ringmaild holds the spool %s but does not answer on its control "
                    "socket; try again later\n",
                    prog, spool);
        else
            fprintf(err, "%s: %s/%s: flock: %s\n", prog, spool, QUEUECTL_LOCK_NAME,
                    strerror(errno));
        *rc = EX_TEMPFAIL;
        close(fd);
        return -1;
    }
    return fd;
}

static int queuectl_offline(const struct config *cfg, const char *prog, enum queuectl_op op,
                            const char *const *targets, size_t n, FILE *out, FILE *err,
                            unsigned *count)
{
    if (!spool_read_allowed(cfg->run_as, geteuid())) {
        fprintf(err, "%s: permission denied: only root and %s may change the queue\n", prog,
                cfg->run_as ? cfg->run_as : "the run-as user");
        return EX_NOPERM;
    }
    int dirfd = open(cfg->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && errno == ENOENT)
        return EX_OK; /* no spool yet: nothing queued */
    if (dirfd < 0) {
        fprintf(err, "%s: %s: %s\n", prog, cfg->spool, strerror(errno));
        return errno == EACCES ? EX_NOPERM : EX_IOERR;
    }
    int rc = EX_OK;
    int lockfd = queuectl_lock(cfg->spool, dirfd, prog, err, &rc);
    if (lockfd < 0) {
        close(dirfd);
        return rc;
    }
    struct spool_read_list list;
    char why[512];
    if (spool_read_all(cfg->spool, &list, why, sizeof(why)) < 0) {
        fprintf(err, "%s: cannot read the queue: %s\n", prog, why);
        rc = EX_IOERR;
    }
    for (size_t i = 0; rc == EX_OK && i < list.n; i++) {
        const struct spool_read_msg *m = &list.msgs[i];
        if (!queuectl_matches(&m->env, targets, n))
            continue;
        int r = queuectl_apply(dirfd, op, m);
        if (r < 0) {
            fprintf(err, "%s: %s: %s: %s\n", prog, m->env.qid, m->path, strerror(errno));
            rc = EX_IOERR;
        } else if (r > 0) {
            fprintf(out, "%s %s\n", m->env.qid, queuectl_ops[op].done);
            (*count)++;
        }
    }
    for (size_t t = 0; rc == EX_OK && t < n; t++) {
        bool found = queuectl_is_filter(targets[t]) || !qid_valid(targets[t]);
        for (size_t i = 0; !found && i < list.n; i++)
            found = !strcmp(list.msgs[i].env.qid, targets[t]);
        if (!found)
            fprintf(err, "%s: %s: no such message in the queue\n", prog, targets[t]);
    }
    spool_read_list_free(&list);
    close(lockfd);
    close(dirfd);
    return rc;
}

int queuectl_change(const struct config *cfg, const char *prog, enum queuectl_op op,
                    const char *const *targets, size_t n, FILE *out, FILE *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!queuectl_target_valid(targets[i])) {
            fprintf(err,
                    "%s: %s: not a queue id, ALL, or a filter (R, S or I, maybe after "
                    "'!', then text)\n",
                    prog, targets[i]);
            return EX_USAGE;
        }
    }
    unsigned count = 0;
    int rc = EX_OK;
    char line[QUEUECTL_LINE_MAX];
    for (size_t i = 0; rc == EX_OK && i < n;) {
        /* as many targets as fit in one request line */
        size_t len = (size_t)snprintf(line, sizeof(line), "%s", queuectl_ops[op].verb);
        size_t first = i;
        while (i < n && queuectl_line_add(line, &len, targets[i]) == 0)
            i++;
        if (i == first) {
            fprintf(err, "%s: %s: too long\n", prog, targets[i]);
            return EX_USAGE;
        }
        struct queuectl_answer ans;
        bool connected;
        if (queuectl_request(cfg->control_socket, line, QUEUECTL_TIMEOUT_S, queuectl_print_data,
                             out, &ans, &connected) < 0) {
            int e = errno;
            if (first == 0 && queuectl_daemon_down(connected, e)) {
                rc = queuectl_offline(cfg, prog, op, targets, n, out, err, &count);
                break;
            }
            rc = queuectl_no_answer(err, prog, cfg->control_socket, connected, e);
        } else if (ans.code) {
            rc = queuectl_refused(err, prog, &ans);
        } else {
            count += (unsigned)strtoul(ans.text, NULL, 10);
        }
    }
    if (count > 0)
        fprintf(err, "%s: %s: %u message%s\n", prog, queuectl_ops[op].summary, count,
                count == 1 ? "" : "s");
    return rc;
}
