#include "core/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "util/log.h"
#include "util/progpath.h"

#define PICKUP_NAME_MAX 64

struct pickup {
    const char *dir;
    const char *config_path;
    char sendmail[PATH_MAX];
    int dirfd;
    uint32_t interval_ms;
};

/* What ringmail-postdrop names its files (cli/maildrop.h); anything else is left alone. */
static bool pickup_name_valid(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= PICKUP_NAME_MAX && name[0] != '.' &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static const char *pickup_status_text(int code)
{
    switch (code) {
    case EX_USAGE:
        return "usage";
    case EX_DATAERR:
        return "not a maildrop file, or refused by the daemon";
    case EX_NOINPUT:
        return "cannot be read";
    case EX_NOUSER:
    case EX_UNAVAILABLE:
        return "refused by the daemon";
    case EX_CONFIG:
        return "the configuration cannot be read as that user";
    case EX_NOPERM:
        return "owner mismatch";
    case EX_TEMPFAIL:
        return "temporary failure";
    default:
        return "error";
    }
}

/* The child: becomes the file's owner and runs ringmail-sendmail --pickup. Never returns. */
static _Noreturn void pickup_exec(const struct pickup *pk, const char *name, int fd,
                                  const struct stat *st)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_WRONLY);
    if (dup2(fd, STDIN_FILENO) < 0 || null < 0 || dup2(null, STDOUT_FILENO) < 0)
        _exit(EX_OSERR);
    close_range(STDERR_FILENO + 1, ~0U, 0);
    if (geteuid() == 0) {
        struct passwd *pw = getpwuid(st->st_uid);
        if (!pw) {
            fprintf(stderr, "ringmaild pickup: %s: owner uid %ld has no passwd entry\n", name,
                    (long)st->st_uid);
            _exit(EX_NOUSER);
        }
        if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(st->st_uid) < 0)
            _exit(EX_OSERR);
    }
    alarm(PICKUP_CHILD_TIMEOUT);
    char *argv[] = {
        (char *)pk->sendmail,    "--pickup", (char *)name, pk->config_path ? "-C" : NULL,
        (char *)pk->config_path, NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    execve(pk->sendmail, argv, envp);
    fprintf(stderr, "ringmaild pickup: %s: %s\n", pk->sendmail, strerror(errno));
    _exit(EX_OSERR);
}

static void pickup_one(const struct pickup *pk, const char *name)
{
    int fd = openat(pk->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        if (errno != ENOENT) /* gone: picked up meanwhile */
            log_warn("maildrop %s/%s: %s: left alone", pk->dir, name, strerror(errno));
        return;
    }
    const char *skip = NULL;
    if (fstat(fd, &st) < 0)
        skip = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        skip = "not a regular file";
    else if (st.st_nlink != 1)
        skip = "more than one link";
    else if (geteuid() != 0 && st.st_uid != geteuid())
        skip = "not owned by the daemon's user (the daemon is not root)";
    if (skip) {
        log_warn("maildrop %s/%s: %s: left alone", pk->dir, name, skip);
        close(fd);
        return;
    }
    pid_t pid = fork();
    if (pid == 0)
        pickup_exec(pk, name, fd, &st);
    close(fd);
    if (pid < 0) {
        log_error("maildrop %s/%s: fork: %s", pk->dir, name, strerror(errno));
        return;
    }
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (got < 0)
        log_error("maildrop %s/%s: waitpid: %s", pk->dir, name, strerror(errno));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == EX_OK)
        log_info("maildrop %s: picked up, uid=%ld", name, (long)st.st_uid);
    else if (WIFEXITED(status))
        log_warn("maildrop %s/%s: uid=%ld: ringmail-sendmail --pickup exited with status %d "
                 "(%s): left for the next scan",
                 pk->dir, name, (long)st.st_uid, WEXITSTATUS(status),
                 pickup_status_text(WEXITSTATUS(status)));
    else
        log_warn("maildrop %s/%s: uid=%ld: ringmail-sendmail --pickup killed by signal %d%s: "
                 "left for the next scan",
                 pk->dir, name, (long)st.st_uid, WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
}

/* A `.tmp-` file a killed ringmail-postdrop left behind. */
static void pickup_stale_tmp(const struct pickup *pk, const char *name, time_t now)
{
    struct stat st;
    if (strncmp(name, ".tmp-", 5) != 0 || fstatat(pk->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        now - st.st_mtime < PICKUP_TMP_MAX_AGE || (geteuid() != 0 && st.st_uid != geteuid()))
        return;
    if (unlinkat(pk->dirfd, name, 0) == 0)
        log_warn("maildrop %s/%s: unfinished for a day (uid=%ld): removed", pk->dir, name,
                 (long)st.st_uid);
}

static int pickup_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One pass, oldest name first (names start with the time they were written). */
static void pickup_scan(const struct pickup *pk)
{
    int fd = dup(pk->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        log_error("maildrop %s: %s", pk->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    char **names = NULL;
    size_t n = 0, cap = 0;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') {
            pickup_stale_tmp(pk, de->d_name, now);
            continue;
        }
        if (!pickup_name_valid(de->d_name)) {
            log_warn("maildrop %s/%s: not a name ringmail-postdrop makes: left alone", pk->dir,
                     de->d_name);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **grown = realloc(names, ncap * sizeof(*grown));
            if (!grown)
                break;
            names = grown;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), pickup_cmp);
    for (size_t i = 0; i < n; i++) {
        pickup_one(pk, names[i]);
        free(names[i]);
    }
    free(names);
}

/* The parent's pidfd (readable once it has exited), or -1 when the kernel has none. */
static int pickup_watch_parent(pid_t parent)
{
    return (int)syscall(SYS_pidfd_open, parent, 0);
}

static _Noreturn void pickup_run(const char *config_path, pid_t parent)
{
    /* Signals stay blocked as the parent left them, but for those that end us. */
    sigset_t end;
    sigemptyset(&end);
    sigaddset(&end, SIGTERM);
    sigaddset(&end, SIGINT);
    sigprocmask(SIG_UNBLOCK, &end, NULL);
    prctl(PR_SET_NAME, "ringmaild-pick");
    /* None of the parent's descriptors (the spool lock, the listeners) may outlive it here. */
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0 && null != STDIN_FILENO) {
        dup2(null, STDIN_FILENO);
        close(null);
    }
    close_range(STDERR_FILENO + 1, ~0U, 0);
    int parent_fd = pickup_watch_parent(parent);
    if (kill(parent, 0) < 0)
        _exit(EX_OK);
    char err[1024];
    struct config *cfg = config_load(config_path, NULL, err, sizeof(err));
    if (!cfg) {
        log_error("maildrop pickup: %s: no pickup", err);
        _exit(EX_CONFIG);
    }
    struct pickup pk = {
        .dir = cfg->maildrop, .config_path = config_path, .interval_ms = cfg->queue.interval};
    if (progpath_sibling("ringmail-sendmail", pk.sendmail, sizeof(pk.sendmail)) < 0) {
        log_error("maildrop pickup: cannot find ringmail-sendmail beside ringmaild: no pickup");
        _exit(EX_SOFTWARE);
    }
    if ((pk.dirfd = open(pk.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        log_error("maildrop %s: %s: no pickup", pk.dir, strerror(errno));
        _exit(EX_CANTCREAT);
    }
    int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino < 0 || inotify_add_watch(ino, pk.dir, IN_MOVED_TO) < 0)
        log_warn("maildrop %s: inotify: %s: picked up every queue.interval only", pk.dir,
                 strerror(errno));
    /* Without a pidfd, look for the parent every second. */
    uint32_t wait_ms =
        parent_fd < 0 && (pk.interval_ms == 0 || pk.interval_ms > 1000) ? 1000 : pk.interval_ms;
    struct timespec last, now;
    clock_gettime(CLOCK_MONOTONIC, &last);
    pickup_scan(&pk);
    for (;;) {
        struct pollfd pfd[2] = {{ino, POLLIN, 0}, {parent_fd, POLLIN, 0}};
        int timeout = wait_ms > INT_MAX ? INT_MAX : wait_ms ? (int)wait_ms : -1;
        int ready = poll(pfd, 2, timeout);
        if (pfd[1].revents || (parent_fd < 0 && kill(parent, 0) < 0))
            _exit(EX_OK); /* the daemon has stopped */
        bool arrived = ready > 0 && pfd[0].revents;
        if (arrived) {
            char events[4096];
            while (read(ino, events, sizeof(events)) > 0)
                ;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t since = (uint64_t)(now.tv_sec - last.tv_sec) * 1000 +
                         (uint64_t)(now.tv_nsec / 1000000) - (uint64_t)(last.tv_nsec / 1000000);
        if (arrived || (pk.interval_ms && since >= pk.interval_ms)) {
            pickup_scan(&pk);
            last = now;
        }
    }
}

int pickup_start(const char *config_path)
{
    /* Forked twice: the parent's only child stays the engine, and the pickup is reaped by
     * whoever reaps orphans; it watches the parent through a pidfd instead. */
    pid_t parent = getpid();
    pid_t mid = fork();
    if (mid == 0) {
        pid_t pid = fork();
        if (pid == 0)
            pickup_run(config_path, parent);
        _exit(pid < 0 ? EX_OSERR : EX_OK);
    }
    int status = 0;
    if (mid > 0)
        while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
            ;
    if (mid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != EX_OK) {
        log_error("maildrop pickup: fork: %s: no pickup", mid < 0 ? strerror(errno) : "failed");
        return -1;
    }
    return 0;
}
