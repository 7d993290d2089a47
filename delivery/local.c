#include "delivery/local.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/engine.h"
#include "util/log.h"

/* The agent enforces mailers.timeout itself; this margin lets its own kill and reply
 * arrive first. */
#define LOCAL_REPLY_MARGIN_MS 30000u

struct local_job {
    struct engine_op op;
    struct engine_timer timer;
    struct local_worker *lw;
    struct local_job *next, *prev;
    int fd; /* the engine's end of the reply socketpair; -1 until sent */
    struct local_reply reply;
    local_done_fn done;
    void *arg;
    enum { LOCAL_JOB_WAITING, LOCAL_JOB_TIMED_OUT, LOCAL_JOB_STOPPED, LOCAL_JOB_UNSENT } why;
    int send_err; /* LOCAL_JOB_UNSENT: the send's -errno */
    /* Not sent yet (the parent's socket was full), in lw's unsent queue: it holds no
     * descriptor until it goes, so a flood waiting here costs memory, not the engine's
     * descriptors (three each ran a 6,000-recipient flood into EMFILE). */
    bool unsent;
    struct local_job *next_unsent;
    struct local_request rq;
};

struct local_worker {
    struct engine_worker *w;
    int sock;
    local_open_fn open_msg;
    void *open_arg;
    bool stopped;
    struct local_job *jobs;
    /* Requests the parent's socket had no room for, in order; sent when it has. */
    struct local_job *unsent, **unsent_tail;
    struct engine_op writable;
    bool polling;
};

struct local_worker *local_worker_new(struct engine_worker *w, int sock, local_open_fn open_msg,
                                      void *open_arg)
{
    struct local_worker *lw = calloc(1, sizeof(*lw));
    if (lw) {
        lw->w = w;
        lw->sock = sock;
        lw->open_msg = open_msg;
        lw->open_arg = open_arg;
        lw->unsent_tail = &lw->unsent;
    }
    return lw;
}

static void local_job_forget_unsent(struct local_job *j)
{
    if (!j->unsent)
        return;
    struct local_worker *lw = j->lw;
    struct local_job **pj = &lw->unsent;
    while (*pj != j)
        pj = &(*pj)->next_unsent;
    *pj = j->next_unsent;
    if (lw->unsent_tail == &j->next_unsent)
        lw->unsent_tail = pj;
    j->unsent = false;
}

static void local_job_unlink(struct local_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        j->lw->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
}

/* The agent is another process: its reply is checked like input (terminated strings, a
 * known status) before anything reads it. */
static bool local_reply_valid(struct local_reply *r)
{
    if (r->status < LOCAL_DELIVERED || r->status > LOCAL_FORWARD)
        return false;
    r->enh[sizeof(r->enh) - 1] = '\0';
    r->text[sizeof(r->text) - 1] = '\0';
    r->mailer[sizeof(r->mailer) - 1] = '\0';
    r->forward[sizeof(r->forward) - 1] = '\0';
    return true;
}

/* `res`: the reply recv's result, or 0 for a job that never got an answer to read. */
static void local_job_end(struct local_job *j, int res)
{
    engine_timer_disarm(j->lw->w, &j->timer);
    local_job_unlink(j);
    local_job_forget_unsent(j);
    if (j->fd >= 0)
        close(j->fd);
    bool answered = res == (int)sizeof(j->reply) && local_reply_valid(&j->reply);
    if (!answered && j->why == LOCAL_JOB_UNSENT) {
        local_reply_set(&j->reply, LOCAL_DEFERRED, "4.3.0", NULL, "local delivery request: %s",
                        strerror(-j->send_err));
    } else if (!answered && j->why == LOCAL_JOB_STOPPED) {
        local_reply_set(&j->reply, LOCAL_DEFERRED, "4.3.2", NULL, "shutting down");
    } else if (!answered && j->why == LOCAL_JOB_TIMED_OUT) {
        local_reply_set(&j->reply, LOCAL_DEFERRED, "4.4.1", NULL,
                        "local delivery agent did not answer in time");
    } else if (!answered && res >= 0) {
        local_reply_set(&j->reply, LOCAL_DEFERRED, "4.3.0", NULL, "%s",
                        res == 0 ? "local delivery agent died" : "malformed local delivery reply");
    } else if (!answered) {
        local_reply_set(&j->reply, LOCAL_DEFERRED, "4.3.0", NULL, "local delivery reply: %s",
                        strerror(-res));
    }
    j->done(j->arg, &j->reply);
    free(j);
}

static void local_job_complete(struct engine_op *op, int res)
{
    local_job_end((struct local_job *)((char *)op - offsetof(struct local_job, op)), res);
}

/* A sent job's recv ends with 0 once its socket is shut; an unsent one has none to wait
 * for and ends here (from the loop, as `done` must). A stopped job comes here too. */
static void local_job_timeout(struct engine_timer *t)
{
    struct local_job *j = (struct local_job *)((char *)t - offsetof(struct local_job, timer));
    if (j->why == LOCAL_JOB_WAITING)
        j->why = LOCAL_JOB_TIMED_OUT;
    if (j->fd >= 0)
        shutdown(j->fd, SHUT_RDWR);
    else
        local_job_end(j, 0);
}

static int local_send(int sock, const struct local_request *rq, int msg_fd, int reply_fd)
{
    struct iovec iov = {(void *)rq, sizeof(*rq)};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {msg_fd, reply_fd};
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return 0;
}

/* Sends `j` with the message (opened now) and a new reply socket, and starts reading the
 * reply: 0, -EAGAIN (the socket is full: nothing kept), or -errno. */
static int local_job_send(struct local_worker *lw, struct local_job *j)
{
    int msg_fd = lw->open_msg(lw->open_arg, j->rq.qid, j->rq.data_offset != 0);
    if (msg_fd < 0)
        return msg_fd;
    int sv[2], rc = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        close(msg_fd);
        return rc;
    }
    rc = local_send(lw->sock, &j->rq, msg_fd, sv[1]);
    close(msg_fd);
    close(sv[1]); /* the agent holds the only other copy: its exit is our end of file */
    if (rc < 0) {
        close(sv[0]);
        return rc;
    }
    j->fd = sv[0];
    io_uring_prep_recv(engine_sqe(lw->w, &j->op), j->fd, &j->reply, sizeof(j->reply), 0);
    return 0;
}

static void local_writable(struct engine_op *op, int res);

static void local_poll_writable(struct local_worker *lw)
{
    if (lw->polling)
        return;
    lw->polling = true;
    lw->writable.complete = local_writable;
    io_uring_prep_poll_add(engine_sqe(lw->w, &lw->writable), lw->sock, POLLOUT);
}

static void local_keep_unsent(struct local_worker *lw, struct local_job *j)
{
    j->unsent = true;
    *lw->unsent_tail = j;
    lw->unsent_tail = &j->next_unsent;
    local_poll_writable(lw);
}

/* The parent's socket has room again: the waiting requests go, in order, as far as it
 * takes them. One that cannot go otherwise ends deferred. */
static void local_writable(struct engine_op *op, int res)
{
    struct local_worker *lw =
        (struct local_worker *)((char *)op - offsetof(struct local_worker, writable));
    (void)res; /* an error shows in the sends below */
    lw->polling = false;
    while (lw->unsent && !lw->stopped) {
        struct local_job *j = lw->unsent;
        int rc = local_job_send(lw, j);
        if (rc == -EAGAIN) {
            local_poll_writable(lw);
            return;
        }
        local_job_forget_unsent(j);
        if (rc < 0) {
            j->why = LOCAL_JOB_UNSENT;
            j->send_err = rc;
            local_job_end(j, 0);
        }
    }
}

int local_deliver(struct local_worker *lw, const struct local_request *rq, uint32_t timeout_ms,
                  local_done_fn done, void *arg)
{
    if (lw->stopped)
        return -ECANCELED;
    if (lw->sock < 0)
        return -ENOTCONN;
    struct local_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->lw = lw;
    j->fd = -1;
    j->rq = *rq;
    j->done = done;
    j->arg = arg;
    j->op.complete = local_job_complete;
    j->timer.fire = local_job_timeout;
    int rc = lw->unsent ? -EAGAIN : local_job_send(lw, j);
    if (rc == -EAGAIN)
        local_keep_unsent(lw, j);
    else if (rc < 0) {
        free(j);
        return rc;
    }
    j->next = lw->jobs;
    if (lw->jobs)
        lw->jobs->prev = j;
    lw->jobs = j;
    engine_timer_arm(lw->w, &j->timer, engine_now_ms(lw->w) + timeout_ms + LOCAL_REPLY_MARGIN_MS);
    return 0;
}

/* A job not sent yet ends from its timer, on the loop's next turn. */
void local_worker_stop(struct local_worker *lw)
{
    lw->stopped = true;
    for (struct local_job *j = lw->jobs; j; j = j->next) {
        j->why = LOCAL_JOB_STOPPED;
        if (j->fd >= 0)
            shutdown(j->fd, SHUT_RDWR);
        else
            engine_timer_arm(lw->w, &j->timer, 0);
    }
}

void local_worker_free(struct local_worker *lw)
{
    if (!lw)
        return;
    while (lw->jobs) {
        struct local_job *j = lw->jobs;
        lw->jobs = j->next;
        if (j->fd >= 0)
            close(j->fd);
        free(j);
    }
    free(lw);
}
