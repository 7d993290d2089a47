/* delivery/pipe.c — the program mailer (contract in pipe.h). */
#include "delivery/pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define PIPE_TEXT_MAX 1000
/* sendmail's grace between asking a timed-out program to stop and killing it */
#define PIPE_KILL_GRACE_MS 5000

/* sendmail's SysExMsg[] texts, and the class each status gets. */
static const struct pipe_sysexit {
    int code;
    enum local_status status;
    const char *enh;
    const char *text;
} pipe_sysexits[] = {
    {EX_USAGE, LOCAL_FAILED, "5.5.4", "Bad usage"},
    {EX_DATAERR, LOCAL_FAILED, "5.6.0", "Data format error"},
    {EX_NOINPUT, LOCAL_FAILED, "5.3.0", "Cannot open input"},
    {EX_NOUSER, LOCAL_FAILED, "5.1.1", "User unknown"},
    {EX_NOHOST, LOCAL_FAILED, "5.1.2", "Host unknown"},
    {EX_UNAVAILABLE, LOCAL_FAILED, "5.3.0", "Service unavailable"},
    {EX_SOFTWARE, LOCAL_FAILED, "5.3.0", "Internal error"},
    {EX_OSERR, LOCAL_DEFERRED, "4.0.0", "Operating system error"},
    {EX_OSFILE, LOCAL_FAILED, "5.3.0", "System file missing"},
    {EX_CANTCREAT, LOCAL_FAILED, "5.3.0", "Can't create output"},
    {EX_IOERR, LOCAL_DEFERRED, "4.3.0", "I/O error"},
    {EX_TEMPFAIL, LOCAL_DEFERRED, "4.0.0", "Deferred"},
    {EX_PROTOCOL, LOCAL_FAILED, "5.3.0", "Remote protocol error"},
    {EX_NOPERM, LOCAL_FAILED, "5.7.0", "Insufficient permission"},
    {EX_CONFIG, LOCAL_FAILED, "5.3.5", "Local configuration error"},
};

struct pipe_run {
    int in;              /* the program's stdin, -1 once closed */
    int out;             /* its stdout and stderr, -1 after end of file */
    int pidfd;           /* readable once the program has exited */
    bool exited;         /* the pidfd said so: stop feeding it, stop waiting for its output */
    int write_err;       /* a failed write to stdin, other than the program's going away */
    int64_t deadline_ms; /* -1: none */
    size_t text_len;
    char text[PIPE_TEXT_MAX];
};

static int64_t pipe_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pipe_poll_timeout(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t left = deadline_ms - pipe_now_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* What the program wrote: the first PIPE_TEXT_MAX bytes kept, the rest read and dropped
 * so that a chatty program never blocks on a full pipe. */
static void pipe_drain(struct pipe_run *run)
{
    while (run->out >= 0) {
        char buf[4096];
        ssize_t n = read(run->out, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(run->out);
            run->out = -1;
            return;
        }
        size_t keep = sizeof run->text - run->text_len;
        if (keep > (size_t)n)
            keep = (size_t)n;
        memcpy(run->text + run->text_len, buf, keep);
        run->text_len += keep;
    }
}

/* Waits until stdin takes more (when `writing`), output arrives, or the program exits.
 * -ETIMEDOUT at the deadline; -EPIPE when writing to a program that has exited. */
static int pipe_wait(struct pipe_run *run, bool writing)
{
    struct pollfd p[3] = {
        {.fd = run->pidfd, .events = POLLIN},
        {.fd = run->out, .events = POLLIN},
        {.fd = writing ? run->in : -1, .events = POLLOUT},
    };
    int n = poll(p, 3, pipe_poll_timeout(run->deadline_ms));
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        return -ETIMEDOUT;
    if (p[1].revents)
        pipe_drain(run);
    if (p[0].revents) {
        run->exited = true;
        pipe_drain(run);
        if (writing)
            return -EPIPE;
    }
    return 0;
}

static int pipe_put(void *arg, const char *p, size_t n)
{
    struct pipe_run *run = arg;
    while (n > 0) {
        ssize_t w = write(run->in, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            if (errno != EPIPE)
                run->write_err = errno;
            return -errno;
        }
        int rc = pipe_wait(run, true);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool pipe_transient(int err)
{
    return err == EAGAIN || err == ENOMEM || err == ETXTBSY || err == EMFILE || err == ENFILE ||
           err == EIO;
}

static _Noreturn void pipe_child(const struct pipe_job *job, int in, int out)
{
    /* its own process group, so that a timeout reaches the shell's children too */
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* an ignored signal stays ignored across exec: the daemon ignores SIGPIPE */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0)
        _exit(EX_OSERR);
    closefrom(STDERR_FILENO + 1);
    if (!job->dir || chdir(job->dir) < 0)
        (void)!chdir("/");
    execve(job->argv[0], (char *const *)job->argv, (char *const *)job->env);
    int err = errno;
    dprintf(STDOUT_FILENO, "Cannot exec %s: %s\n", job->argv[0], strerror(err));
    _exit(pipe_transient(err) ? EX_TEMPFAIL : EX_UNAVAILABLE);
}

/* The command as its owner wrote it, for "Timeout waiting for ...". */
static const char *pipe_command(const struct pipe_job *job)
{
    const char *const *a = job->argv;
    if (a[1] && a[2] && strcmp(a[1], "-c") == 0)
        return a[2];
    return a[0];
}

/* The program's output as one line of text for the log and the bounce. */
static void pipe_text(struct local_reply *r, const struct pipe_run *run)
{
    size_t n = 0;
    for (size_t i = 0; i < run->text_len && n + 1 < sizeof r->text; i++) {
        unsigned char c = (unsigned char)run->text[i];
        if (c < ' ' || c == 0x7f)
            c = ' ';
        if (c != ' ' || (n > 0 && r->text[n - 1] != ' '))
            r->text[n++] = (char)c;
    }
    while (n > 0 && r->text[n - 1] == ' ')
        n--;
    r->text[n] = '\0';
}

static void pipe_result(struct local_reply *r, const struct pipe_run *run, int status)
{
    if (WIFSIGNALED(status)) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "program died with signal %d",
                        WTERMSIG(status));
    } else if (WEXITSTATUS(status) == 0) {
        local_reply_set(r, LOCAL_DELIVERED, "2.0.0", NULL, "Sent");
    } else {
        int code = WEXITSTATUS(status);
        const struct pipe_sysexit *e = NULL;
        for (size_t i = 0; i < sizeof pipe_sysexits / sizeof pipe_sysexits[0]; i++)
            if (pipe_sysexits[i].code == code)
                e = &pipe_sysexits[i];
        if (e)
            local_reply_set(r, e->status, e->enh, NULL, "%s", e->text);
        else
            local_reply_set(r, LOCAL_FAILED, "5.3.0", NULL, "unknown mailer error %d", code);
    }
    if (run->text_len > 0)
        pipe_text(r, run);
}

/* A program past its time: SIGTERM to its group, SIGKILL after the grace. The leader is
 * not reaped before the SIGKILL, so its process group cannot be someone else's. */
static void pipe_kill(pid_t pid, struct pipe_run *run)
{
    kill(-pid, SIGTERM);
    run->deadline_ms = pipe_now_ms() + PIPE_KILL_GRACE_MS;
    while (!run->exited && pipe_wait(run, false) == 0)
        ;
    kill(-pid, SIGKILL);
}

/* Runs the started program to its end: the message in, its output out, its status. */
static int pipe_run_program(pid_t pid, struct pipe_run *run, const struct pipe_job *job,
                            const struct mailbox_msg *msg, int *status)
{
    unsigned flags = (job->from_line ? MAILBOX_COPY_FROM_LINE : 0) |
                     (job->return_path ? MAILBOX_COPY_RETURN_PATH : 0);
    int rc = mailbox_copy(msg, flags, pipe_put, run);
    /* a program that stops reading early is judged by its exit status alone */
    if (rc == -EPIPE)
        rc = 0;
    if (rc == 0) {
        close(run->in);
        run->in = -1;
        while (!run->exited && (rc = pipe_wait(run, false)) == 0)
            ;
    }
    /* killed before its stdin closes: a partial message must not look complete to it */
    if (rc < 0)
        pipe_kill(pid, run);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return rc;
}

void pipe_deliver(const struct pipe_job *job, const struct mailbox_msg *msg, struct local_reply *r)
{
    if (!job->argv || !job->argv[0] || job->argv[0][0] != '/') {
        local_reply_set(r, LOCAL_FAILED, "5.3.5", NULL, "program mailer without an absolute path");
        return;
    }
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "pipe: %s", strerror(errno));
        return;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "pipe: %s", strerror(errno));
        close(in[0]);
        close(in[1]);
        return;
    }
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old);
    struct pipe_run run = {.in = in[1], .out = out[0], .pidfd = -1, .deadline_ms = -1};
    pid_t pid = fork();
    if (pid == 0)
        pipe_child(job, in[0], out[1]);
    int fork_err = errno;
    close(in[0]);
    close(out[1]);
    if (pid > 0) {
        setpgid(pid, pid); /* the child does it too: whichever runs first */
        run.pidfd = pidfd_open(pid, 0);
    }
    if (pid < 0 || run.pidfd < 0) {
        int err = pid < 0 ? fork_err : errno;
        if (pid > 0) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "%s: %s", pid < 0 ? "fork" : "pidfd_open",
                        strerror(err));
    } else {
        fcntl(run.in, F_SETFL, O_NONBLOCK);
        fcntl(run.out, F_SETFL, O_NONBLOCK);
        if (job->timeout_s > 0)
            run.deadline_ms = pipe_now_ms() + (int64_t)job->timeout_s * 1000;
        int status = 0;
        int rc = pipe_run_program(pid, &run, job, msg, &status);
        if (rc == -ETIMEDOUT)
            local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "Timeout waiting for %s",
                            pipe_command(job));
        else if (rc < 0 && run.write_err)
            local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "writing to %s: %s",
                            pipe_command(job), strerror(run.write_err));
        else if (rc < 0)
            local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "reading the message: %s",
                            strerror(-rc));
        else
            pipe_result(r, &run, status);
        close(run.pidfd);
    }
    if (run.in >= 0)
        close(run.in);
    if (run.out >= 0)
        close(run.out);
    sigaction(SIGPIPE, &old, NULL);
}
