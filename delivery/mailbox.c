/* delivery/mailbox.c — mbox, Maildir and file mailers (contract in mailbox.h). */
#include "delivery/mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define MAILBOX_CHUNK 16384
/* mail.local's LOCKTO_RM and liblockfile's: a dotlock this old was left by a dead writer. */
#define MAILBOX_DOTLOCK_STALE_S 300
#define MAILBOX_LOCK_RETRY_MS   100
/* Tries at a Maildir name before giving up: a collision needs the same second, pid and
 * counter, so more than one retry means something else is wrong. */
#define MAILBOX_MAILDIR_TRIES 8

/* --- the message as the mailers write it --- */

struct mailbox_copier {
    int (*put)(void *arg, const char *p, size_t n);
    void *arg;
    bool quote;
    bool bol;       /* the last byte of the message written ended a line (or none yet) */
    size_t matched; /* bytes of "From " held back at the start of a line */
    size_t len;
    char out[MAILBOX_CHUNK];
};

static const char mailbox_from_[] = "From ";

static int copier_flush(struct mailbox_copier *c)
{
    int rc = c->len > 0 ? c->put(c->arg, c->out, c->len) : 0;
    c->len = 0;
    return rc;
}

static int copier_emit(struct mailbox_copier *c, const char *p, size_t n)
{
    while (n > 0) {
        if (c->len == sizeof c->out) {
            int rc = copier_flush(c);
            if (rc < 0)
                return rc;
        }
        size_t k = sizeof c->out - c->len;
        if (k > n)
            k = n;
        memcpy(c->out + c->len, p, k);
        c->len += k;
        p += k;
        n -= k;
    }
    return 0;
}

/* One byte of the message, line ends already LF. A line's first bytes that match "From "
 * are held back until the line either becomes one to quote or stops matching. */
static int copier_byte(struct mailbox_copier *c, char b)
{
    int rc = 0;
    if (c->quote && c->bol) {
        if (b == mailbox_from_[c->matched]) {
            if (++c->matched < sizeof mailbox_from_ - 1)
                return 0;
            c->matched = 0;
            c->bol = false;
            return copier_emit(c, ">From ", 6);
        }
        if (c->matched > 0)
            rc = copier_emit(c, mailbox_from_, c->matched);
        c->matched = 0;
    }
    c->bol = b == '\n';
    return rc < 0 ? rc : copier_emit(c, &b, 1);
}

static int copier_headf(struct mailbox_copier *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int copier_headf(struct mailbox_copier *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    /* A sender that long cannot come through SMTP; cut, the line end kept. */
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    return copier_emit(c, line, (size_t)n);
}

static int copier_envelope(struct mailbox_copier *c, const struct mailbox_msg *msg, unsigned flags)
{
    const char *sender = msg->sender ? msg->sender : "";
    int rc = 0;
    if (flags & MAILBOX_COPY_FROM_LINE) {
        char date[64];
        struct tm tm;
        time_t t = (time_t)msg->arrival;
        /* ctime's layout, as mail.local writes it and mbox readers parse it */
        if (!localtime_r(&t, &tm) || strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm) == 0)
            return -EINVAL;
        rc = copier_headf(c, "From %s %s\n", *sender ? sender : "MAILER-DAEMON", date);
    }
    if (rc == 0 && (flags & MAILBOX_COPY_RETURN_PATH))
        rc = copier_headf(c, "Return-Path: <%s>\n", sender);
    return rc;
}

static int copier_body(struct mailbox_copier *c, int fd, uint64_t from)
{
    char in[MAILBOX_CHUNK];
    off_t off = (off_t)from;
    bool cr = false;
    for (;;) {
        ssize_t n = pread(fd, in, sizeof in, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        off += n;
        for (ssize_t i = 0; i < n; i++) {
            int rc = 0;
            if (cr && in[i] != '\n')
                rc = copier_byte(c, '\r');
            cr = in[i] == '\r';
            if (rc == 0 && !cr)
                rc = copier_byte(c, in[i]);
            if (rc < 0)
                return rc;
        }
    }
    int rc = cr ? copier_byte(c, '\r') : 0;
    if (rc == 0 && c->matched > 0) {
        rc = copier_emit(c, mailbox_from_, c->matched);
        c->bol = false;
    }
    if (rc == 0 && !c->bol)
        rc = copier_emit(c, "\n", 1);
    return rc;
}

int mailbox_copy(const struct mailbox_msg *msg, unsigned flags,
                 int (*put)(void *arg, const char *p, size_t n), void *arg)
{
    struct mailbox_copier c = {
        .put = put, .arg = arg, .quote = (flags & MAILBOX_COPY_QUOTE_FROM) != 0, .bol = true};
    int rc = copier_envelope(&c, msg, flags);
    if (rc == 0)
        rc = copier_body(&c, msg->fd, msg->data_offset);
    if (rc == 0 && (flags & MAILBOX_COPY_BLANK_LINE))
        rc = copier_emit(&c, "\n", 1);
    return rc < 0 ? rc : copier_flush(&c);
}

/* --- results --- */

static void reply_delivered(struct local_reply *r)
{
    local_reply_set(r, LOCAL_DELIVERED, "2.0.0", NULL, "Sent");
}

/* A failed system call on the mailbox: deferred, a full one with 4.2.2. */
static void reply_errno(struct local_reply *r, const char *path, int err)
{
    bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
    local_reply_set(r, LOCAL_DEFERRED, full ? "4.2.2" : "4.2.0", NULL, "%s: %s", path,
                    strerror(err));
}

static int64_t mailbox_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void mailbox_nap(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = MAILBOX_LOCK_RETRY_MS * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- locks --- */

enum dotlock_result { DOTLOCK_TAKEN, DOTLOCK_SKIPPED, DOTLOCK_FAILED };

static enum dotlock_result dotlock_take(const char *lock, const char *path, int64_t deadline,
                                        struct local_reply *r)
{
    for (;;) {
        int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd >= 0) {
            close(fd);
            return DOTLOCK_TAKEN;
        }
        if (errno == EACCES || errno == EPERM || errno == EROFS)
            return DOTLOCK_SKIPPED;
        if (errno != EEXIST) {
            reply_errno(r, lock, errno);
            return DOTLOCK_FAILED;
        }
        struct stat st;
        if (lstat(lock, &st) == 0 && time(NULL) - st.st_mtime > MAILBOX_DOTLOCK_STALE_S) {
            if (unlink(lock) == 0)
                log_info("%s: removed a stale lock (%lld s old)", lock,
                         (long long)(time(NULL) - st.st_mtime));
            continue;
        }
        if (mailbox_now_ms() >= deadline) {
            local_reply_set(r, LOCAL_DEFERRED, "4.2.0", NULL, "%s: mailbox is locked (%s exists)",
                            path, lock);
            return DOTLOCK_FAILED;
        }
        mailbox_nap();
    }
}

static bool fcntl_lock(int fd, const char *path, int64_t deadline, struct local_reply *r)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    for (;;) {
        if (fcntl(fd, F_SETLK, &fl) == 0)
            return true;
        if (errno != EACCES && errno != EAGAIN && errno != EINTR) {
            reply_errno(r, path, errno);
            return false;
        }
        if (mailbox_now_ms() >= deadline) {
            local_reply_set(r, LOCAL_DEFERRED, "4.2.0", NULL,
                            "%s: mailbox is locked by another process", path);
            return false;
        }
        mailbox_nap();
    }
}

/* --- opening and appending --- */

enum mailbox_kind { MAILBOX_KIND_MBOX, MAILBOX_KIND_FILE };

static int open_failed(const char *path, enum mailbox_kind kind, int err, struct local_reply *r)
{
    /* sendmail's file mailer: "Can't create output" (EX_CANTCREAT) bounces; a mailbox that
     * cannot be opened is the site's problem, mail.local defers. */
    bool permanent = err == EACCES || err == EPERM || err == ENOENT || err == ENOTDIR ||
                     err == EISDIR || err == ELOOP || err == EROFS;
    if (kind == MAILBOX_KIND_FILE && permanent)
        local_reply_set(r, LOCAL_FAILED, "5.2.0", NULL, "%s: Can't create output: %s", path,
                        strerror(err));
    else
        reply_errno(r, path, err);
    return -1;
}

/* The mailbox, opened for appending: created when missing, never followed through a
 * symbolic link, never a file other than the one looked at. */
static int mailbox_open(const char *path, enum mailbox_kind kind, struct local_reply *r)
{
    for (int tries = 0; tries < 2; tries++) {
        struct stat ls, fs;
        if (lstat(path, &ls) < 0) {
            if (errno != ENOENT)
                return open_failed(path, kind, errno, r);
            int fd =
                open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd >= 0)
                return fd;
            if (errno == EEXIST)
                continue; /* created meanwhile: look at it again */
            return open_failed(path, kind, errno, r);
        }
        if (S_ISLNK(ls.st_mode)) {
            local_reply_set(r, LOCAL_FAILED, "5.2.0", NULL, "%s: is a symbolic link", path);
            return -1;
        }
        if (!S_ISREG(ls.st_mode) || (kind == MAILBOX_KIND_MBOX && ls.st_nlink != 1)) {
            local_reply_set(r, LOCAL_FAILED, "5.2.0", NULL, "%s: not a regular file with one link",
                            path);
            return -1;
        }
        if (kind == MAILBOX_KIND_MBOX && ls.st_uid != geteuid()) {
            local_reply_set(r, LOCAL_FAILED, "5.2.0", NULL, "%s: wrong ownership (uid %lu)", path,
                            (unsigned long)ls.st_uid);
            return -1;
        }
        /* O_NONBLOCK: a FIFO put in its place between lstat and open must not hang us */
        int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return open_failed(path, kind, errno, r);
        if (fstat(fd, &fs) < 0 || fs.st_dev != ls.st_dev || fs.st_ino != ls.st_ino) {
            close(fd);
            local_reply_set(r, LOCAL_DEFERRED, "4.2.0", NULL, "%s: changed while being opened",
                            path);
            return -1;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
            reply_errno(r, path, errno);
            close(fd);
            return -1;
        }
        return fd;
    }
    local_reply_set(r, LOCAL_DEFERRED, "4.2.0", NULL, "%s: created and removed while being opened",
                    path);
    return -1;
}

struct mailbox_out {
    int fd;
    int err; /* the write's errno, 0 when the df was the one that failed */
};

static int mailbox_put(void *arg, const char *p, size_t n)
{
    struct mailbox_out *o = arg;
    while (n > 0) {
        ssize_t w = write(o->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            o->err = errno;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the message at the end of the locked file `fd`; on any failure the file goes
 * back to its size before, so a reader never sees half a message. */
static void mailbox_append(int fd, const char *path, const struct mailbox_msg *msg,
                           struct local_reply *r)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        reply_errno(r, path, errno);
        return;
    }
    struct mailbox_out o = {.fd = fd};
    unsigned flags = MAILBOX_COPY_FROM_LINE | MAILBOX_COPY_RETURN_PATH | MAILBOX_COPY_QUOTE_FROM |
                     MAILBOX_COPY_BLANK_LINE;
    int rc = mailbox_copy(msg, flags, mailbox_put, &o);
    if (rc == 0 && fsync(fd) < 0)
        rc = -(o.err = errno);
    if (rc == 0) {
        reply_delivered(r);
        return;
    }
    if (o.err)
        reply_errno(r, path, o.err);
    else
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "reading the message: %s", strerror(-rc));
    if (ftruncate(fd, st.st_size) < 0 || fsync(fd) < 0)
        log_error("%s: cannot truncate back to %lld bytes after a failed delivery: %m", path,
                  (long long)st.st_size);
}

void mailbox_mbox(const char *path, const struct mailbox_msg *msg, struct local_reply *r)
{
    int64_t deadline = mailbox_now_ms() + (int64_t)msg->timeout_s * 1000;
    char lock[PATH_MAX];
    if ((size_t)snprintf(lock, sizeof lock, "%s.lock", path) >= sizeof lock) {
        local_reply_set(r, LOCAL_FAILED, "5.2.0", NULL, "%s: path too long", path);
        return;
    }
    enum dotlock_result dl = dotlock_take(lock, path, deadline, r);
    if (dl == DOTLOCK_FAILED)
        return;
    int fd = mailbox_open(path, MAILBOX_KIND_MBOX, r);
    if (fd >= 0) {
        if (fcntl_lock(fd, path, deadline, r))
            mailbox_append(fd, path, msg, r);
        close(fd);
    }
    if (dl == DOTLOCK_TAKEN && unlink(lock) < 0)
        log_error("%s: cannot remove the lock: %m", lock);
}

void mailbox_file(const char *path, const struct mailbox_msg *msg, struct local_reply *r)
{
    if (strcmp(path, "/dev/null") == 0) {
        reply_delivered(r);
        return;
    }
    int64_t deadline = mailbox_now_ms() + (int64_t)msg->timeout_s * 1000;
    int fd = mailbox_open(path, MAILBOX_KIND_FILE, r);
    if (fd < 0)
        return;
    if (fcntl_lock(fd, path, deadline, r))
        mailbox_append(fd, path, msg, r);
    close(fd);
}

/* --- Maildir --- */

/* The maildir spec's host part: '/' and ':' would end the name or start its info. */
static void maildir_host(const char *hostname, char *out, size_t cap)
{
    char own[256];
    if (!hostname || !*hostname) {
        if (gethostname(own, sizeof own) < 0 || !*own)
            snprintf(own, sizeof own, "localhost");
        own[sizeof own - 1] = '\0';
        hostname = own;
    }
    size_t n = 0;
    for (const char *h = hostname; *h && n + 5 < cap; h++) {
        if (*h == '/' || *h == ':')
            n += (size_t)snprintf(out + n, cap - n, "\\%03o", (unsigned char)*h);
        else
            out[n++] = *h;
    }
    out[n] = '\0';
}

static int maildir_mkdirs(const char *base, char *buf, size_t cap)
{
    static const char *const sub[] = {"", "/tmp", "/new", "/cur"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        snprintf(buf, cap, "%s%s", base, sub[i]);
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

/* Creates tmp/NAME with a name unused in tmp/ and new/; fills tmp and new with the paths. */
static int maildir_create(const char *base, const char *host, char *tmp, char *new_, size_t cap)
{
    static unsigned maildir_count;
    for (int i = 0; i < MAILBOX_MAILDIR_TRIES; i++) {
        char name[512];
        struct stat st;
        snprintf(name, sizeof name, "%lld.P%ld_Q%u.%s", (long long)time(NULL), (long)getpid(),
                 ++maildir_count, host);
        if ((size_t)snprintf(tmp, cap, "%s/tmp/%s", base, name) >= cap ||
            (size_t)snprintf(new_, cap, "%s/new/%s", base, name) >= cap)
            return -ENAMETOOLONG;
        if (lstat(new_, &st) == 0)
            continue;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EEXIST;
}

static int maildir_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

void mailbox_maildir(const char *dir, const struct mailbox_msg *msg, struct local_reply *r)
{
    char base[PATH_MAX], newdir[PATH_MAX], tmp[PATH_MAX], new_[PATH_MAX], host[256];
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n >= sizeof base - 64) {
        local_reply_set(r, LOCAL_FAILED, "5.2.0", NULL, "%s: path too long", dir);
        return;
    }
    memcpy(base, dir, n);
    base[n] = '\0';
    memcpy(newdir, base, n);
    memcpy(newdir + n, "/new", 5);
    int rc = maildir_mkdirs(base, tmp, sizeof tmp);
    if (rc < 0) {
        reply_errno(r, tmp, -rc);
        return;
    }
    maildir_host(msg->hostname, host, sizeof host);
    int fd = maildir_create(base, host, tmp, new_, sizeof tmp);
    if (fd < 0) {
        reply_errno(r, base, -fd);
        return;
    }
    struct mailbox_out o = {.fd = fd};
    rc = mailbox_copy(msg, MAILBOX_COPY_RETURN_PATH, mailbox_put, &o);
    if (rc == 0 && fsync(fd) < 0)
        rc = -(o.err = errno);
    /* NFS reports a failed write back at close */
    if (close(fd) < 0 && rc == 0)
        rc = -(o.err = errno);
    if (rc == 0 && link(tmp, new_) < 0) {
        /* file systems without hard links (some FUSE, AFS); new/NAME was checked unused */
        if ((errno != EPERM && errno != ENOSYS && errno != EOPNOTSUPP && errno != EXDEV) ||
            rename(tmp, new_) < 0)
            rc = -(o.err = errno);
    }
    if (rc == 0 && (rc = maildir_sync_dir(newdir)) < 0) {
        o.err = -rc;
        unlink(new_);
    }
    /* after a rename tmp/NAME is gone already */
    if (unlink(tmp) < 0 && errno != ENOENT)
        log_error("%s: cannot remove: %m", tmp);
    if (rc == 0)
        reply_delivered(r);
    else if (o.err)
        reply_errno(r, base, o.err);
    else
        local_reply_set(r, LOCAL_DEFERRED, "4.3.0", NULL, "reading the message: %s", strerror(-rc));
}
