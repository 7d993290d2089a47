/*
 * ringmail-postdrop — writes one maildrop file (cli/maildrop.h) from its image on standard
 * input. Installed setgid to submission.maildrop_group (chgrp ringmaildrop; chmod 2755), the
 * only group that may create files in the maildrop directory, as Postfix's postdrop.
 *
 * Everything the caller controls is suspect here: argv (only -C: with the group privilege
 * when the real user is root, or root owns the file and nobody else may write it; any other
 * configuration is read after giving the privilege up), the environment (cleared), the umask
 * and the open descriptors (0-2 made valid, the rest closed), signals and timers (those that
 * end us remove the unfinished file first, the commit cannot be interrupted, SIGXFSZ is
 * ignored so a file size limit is a write error), resource limits (failures are errors),
 * standard input (parsed strictly; the head is written back in its canonical form; the size
 * and recipients are limited as the daemon limits them). It never follows a symbolic link,
 * and writes nothing but that one file, owned by the real user.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/maildrop.h"
#include "core/config.h"

#ifdef __SANITIZE_ADDRESS__
/* LeakSanitizer cannot read a process that is not dumpable (set-group-ID) and aborts at exit
 * instead of checking: it stays off then (the sanitizer's own hook). */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return prctl(PR_GET_DUMPABLE) != 1;
}
#endif

/* The descriptors 0-2 must exist, or the file we create would become one of them. */
static int postdrop_sane_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (nfd != fd)
            return -1;
    }
    close_range(3, ~0U, 0);
    return 0;
}

/* May the real user name `path` as the configuration with the group privilege kept? */
static bool postdrop_config_trusted(const char *path, uid_t ruid)
{
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    if (ruid == 0)
        return true;
    return st.st_uid == 0 && !(st.st_mode & (S_IWGRP | S_IWOTH));
}

static int postdrop_copy(struct maildrop_file *f, uint64_t limit, char *err, size_t errlen)
{
    char chunk[65536];
    uint64_t total = 0;
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        total += n;
        if (limit && total > limit) {
            snprintf(err, errlen, "message too large (limit %llu octets)",
                     (unsigned long long)limit);
            return EX_DATAERR;
        }
        if (maildrop_write(f, chunk, n, err, errlen) < 0)
            return EX_CANTCREAT;
    }
    if (ferror(stdin)) {
        snprintf(err, errlen, "reading standard input: %s", strerror(errno));
        return EX_IOERR;
    }
    return EX_OK;
}

/* The file being written, for a signal that ends us to remove (the caller may signal its own
 * process, or leave an alarm or a CPU limit behind through exec). */
static struct maildrop_file *volatile postdrop_unfinished;

static void postdrop_on_signal(int sig)
{
    struct maildrop_file *f = postdrop_unfinished;
    if (f && f->tmp[0] && f->dirfd >= 0)
        unlinkat(f->dirfd, f->tmp, 0);
    _exit(128 + sig);
}

static void postdrop_signals(void)
{
    struct sigaction sa = {.sa_handler = postdrop_on_signal};
    sigfillset(&sa.sa_mask);
    const int ends[] = {SIGHUP,    SIGINT,  SIGQUIT, SIGTERM, SIGALRM,
                        SIGVTALRM, SIGPROF, SIGXCPU, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
        sigaction(ends[i], &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
        sigaddset(&set, ends[i]);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

static int postdrop_refuse(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int postdrop_refuse(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return EX_DATAERR;
}

static int postdrop_run(const struct config *cfg, char *err, size_t errlen)
{
    struct maildrop_envelope e;
    struct buf head;
    buf_init(&head, 0);
    int rc = EX_OK;
    if (maildrop_read_head(stdin, &e, err, errlen) < 0 ||
        maildrop_format_head(&e, &head, err, errlen) < 0)
        rc = EX_DATAERR;
    /* What the daemon would never take in one transaction would wait in the maildrop for
     * ever: refused now, while the user is there to read why. */
    else if (cfg->limits.max_recipients && e.n_rcpts > cfg->limits.max_recipients)
        rc = postdrop_refuse(err, errlen, "too many recipients (%zu; limits.recipients is %u)",
                             e.n_rcpts, cfg->limits.max_recipients);
    else if (cfg->limits.max_message_size && head.len > cfg->limits.max_message_size)
        rc = postdrop_refuse(err, errlen, "the envelope alone is larger than limits.message_size");
    maildrop_envelope_free(&e);
    if (rc != EX_OK) {
        buf_free(&head);
        return rc;
    }
    struct maildrop_file f;
    rc = maildrop_create(cfg->maildrop, &f, err, errlen) < 0 ? EX_CANTCREAT : EX_OK;
    postdrop_unfinished = &f;
    if (rc == EX_OK && maildrop_write(&f, head.data, head.len, err, errlen) < 0)
        rc = EX_CANTCREAT;
    buf_free(&head);
    if (rc == EX_OK)
        rc = postdrop_copy(&f, cfg->limits.max_message_size, err, errlen);
    /* From here the outcome must match the exit status: no interruption. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    postdrop_unfinished = NULL;
    if (rc != EX_OK)
        maildrop_abort(&f);
    else if (maildrop_commit(&f, err, errlen) < 0)
        rc = EX_CANTCREAT;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    const char *given = NULL;
    if (postdrop_sane_fds() < 0)
        return EX_OSERR;
    clearenv();
    setenv("PATH", "/usr/bin:/bin", 1);
    umask(077);
    postdrop_signals();
    /* The kernel already says so for a set-group-ID program unless fs.suid_dumpable is 1. */
    if (getegid() != getgid())
        prctl(PR_SET_DUMPABLE, 0);
    int opt;
    while ((opt = getopt(argc, argv, "C:")) != -1) {
        if (opt != 'C') {
            fprintf(stderr, "usage: ringmail-postdrop [-C config] < maildrop-file\n");
            return EX_USAGE;
        }
        given = optarg;
    }
    if (optind != argc) {
        fprintf(stderr, "usage: ringmail-postdrop [-C config] < maildrop-file\n");
        return EX_USAGE;
    }
    uid_t ruid = getuid();
    gid_t rgid = getgid();
    const char *path = given;
    if (!path && access(RINGMAIL_CONFIG_FILE, F_OK) == 0)
        path = RINGMAIL_CONFIG_FILE;
    /* A configuration the user controls could point the maildrop anywhere the group may
     * write: it is read, but without the group's privilege. */
    if (given && !postdrop_config_trusted(given, ruid) && getegid() != rgid &&
        setresgid(rgid, rgid, rgid) < 0) {
        fprintf(stderr, "ringmail-postdrop: cannot give up the group privilege: %s\n",
                strerror(errno));
        return EX_OSERR;
    }
    char err[1024] = "";
    struct config *cfg = config_load_settings(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "ringmail-postdrop: %s\n", err);
        return EX_CONFIG;
    }
    int rc = postdrop_run(cfg, err, sizeof(err));
    if (rc != EX_OK)
        fprintf(stderr, "ringmail-postdrop: %s\n", err);
    config_free(cfg);
    return rc;
}
