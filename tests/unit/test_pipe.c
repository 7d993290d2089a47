/* delivery/pipe.c: real programs (/bin/sh, env, pwd) fed a df: the bytes on stdin with and
 * without the From_ line and Return-Path, exit statuses and signals mapped as sendmail's
 * sysexits, output captured into the reply, the environment replaced, the working
 * directory, a timeout (SIGTERM, then SIGKILL for a program that ignores it, its whole
 * process group), a program that stops reading, one that writes a lot before reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery/pipe.h"

#define ARRIVAL   1700000000
#define FROM_DATE "Tue Nov 14 22:13:20 2023"

static char tmpdir[64];
static const char *const test_env[] = {"HOME=/nonexistent", "USER=alice",         "LOGNAME=alice",
                                       "SHELL=/bin/sh",     "PATH=/usr/bin:/bin", NULL};
static const char simple_df[] = "Subject: hi\r\n\r\nFrom the body\r\nbye\r\n";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ringmail-pipe-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("TZ", "UTC", 1);
    tzset();
    /* must not reach the program */
    setenv("RINGMAIL_SECRET", "daemon-only", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int df_make(const char *text, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/df.XXXXXX", tmpdir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    return fd;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void assert_reply(const struct local_reply *r, uint32_t status, const char *enh,
                         const char *text)
{
    if (r->status != status || strcmp(r->enh, enh) != 0 || strcmp(r->text, text) != 0)
        fail_msg("got %u %s \"%s\", want %u %s \"%s\"", r->status, r->enh, r->text, status, enh,
                 text);
}

/* Runs `cmd` with /bin/sh -c on a df of `df`. */
static void run_sh_df(const char *cmd, const char *df, size_t len, unsigned timeout_s,
                      struct local_reply *r)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct pipe_job job = {.argv = argv, .env = test_env, .dir = tmpdir, .timeout_s = timeout_s};
    int fd = df_make(df, len);
    struct mailbox_msg msg = {.fd = fd, .sender = "a@b", .arrival = ARRIVAL};
    memset(r, 0, sizeof *r);
    pipe_deliver(&job, &msg, r);
    close(fd);
}

static void run_sh(const char *cmd, unsigned timeout_s, struct local_reply *r)
{
    run_sh_df(cmd, simple_df, strlen(simple_df), timeout_s, r);
}

static void test_pipe_stdin(void **state)
{
    (void)state;
    char out[128];
    snprintf(out, sizeof out, "%s/stdin", tmpdir);
    const char *argv[] = {"/bin/cp", "/dev/stdin", out, NULL};
    struct pipe_job job = {.argv = argv, .env = test_env, .dir = tmpdir, .timeout_s = 30};
    int fd = df_make(simple_df, strlen(simple_df));
    struct mailbox_msg msg = {.fd = fd, .sender = "", .arrival = ARRIVAL};
    struct local_reply r = {0};

    pipe_deliver(&job, &msg, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", "Sent");
    assert_string_equal(slurp(out), "Subject: hi\n\nFrom the body\nbye\n");

    /* the prog mailer's flags: a From_ line, no >From quoting (no flag E) */
    job.from_line = true;
    job.return_path = true;
    pipe_deliver(&job, &msg, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", "Sent");
    assert_string_equal(slurp(out), "From MAILER-DAEMON " FROM_DATE "\nReturn-Path: <>\n"
                                    "Subject: hi\n\nFrom the body\nbye\n");

    /* procmail's: Return-Path only */
    job.from_line = false;
    msg.sender = "a@b";
    pipe_deliver(&job, &msg, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", "Sent");
    assert_string_equal(slurp(out), "Return-Path: <a@b>\nSubject: hi\n\nFrom the body\nbye\n");
    close(fd);
}

static void test_pipe_exit_statuses(void **state)
{
    (void)state;
    static const struct {
        const char *cmd;
        uint32_t status;
        const char *enh, *text;
    } cases[] = {
        {"cat >/dev/null; exit 0", LOCAL_DELIVERED, "2.0.0", "Sent"},
        {"exit 67", LOCAL_FAILED, "5.1.1", "User unknown"},
        {"exit 68", LOCAL_FAILED, "5.1.2", "Host unknown"},
        {"exit 75", LOCAL_DEFERRED, "4.0.0", "Deferred"},
        {"exit 71", LOCAL_DEFERRED, "4.0.0", "Operating system error"},
        {"exit 74", LOCAL_DEFERRED, "4.3.0", "I/O error"},
        {"exit 65", LOCAL_FAILED, "5.6.0", "Data format error"},
        {"exit 77", LOCAL_FAILED, "5.7.0", "Insufficient permission"},
        {"exit 78", LOCAL_FAILED, "5.3.5", "Local configuration error"},
        {"exit 64", LOCAL_FAILED, "5.5.4", "Bad usage"},
        {"exit 69", LOCAL_FAILED, "5.3.0", "Service unavailable"},
        {"exit 1", LOCAL_FAILED, "5.3.0", "unknown mailer error 1"},
        {"kill -9 $$", LOCAL_DEFERRED, "4.3.0", "program died with signal 9"},
        /* its output, made one line, replaces the status' text */
        {"echo 'no such user' >&2; echo '  here\tor there '; exit 67", LOCAL_FAILED, "5.1.1",
         "no such user here or there"},
        {"printf 'saved\\n'", LOCAL_DELIVERED, "2.0.0", "saved"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct local_reply r;
        run_sh(cases[i].cmd, 30, &r);
        assert_reply(&r, cases[i].status, cases[i].enh, cases[i].text);
    }
}

static void test_pipe_env_and_dir(void **state)
{
    (void)state;
    const char *argv[] = {"/usr/bin/env", NULL};
    struct pipe_job job = {.argv = argv, .env = test_env, .dir = tmpdir, .timeout_s = 30};
    int fd = df_make(simple_df, strlen(simple_df));
    struct mailbox_msg msg = {.fd = fd, .sender = "a@b", .arrival = ARRIVAL};
    struct local_reply r = {0};
    pipe_deliver(&job, &msg, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0",
                 "HOME=/nonexistent USER=alice LOGNAME=alice SHELL=/bin/sh PATH=/usr/bin:/bin");

    const char *pwd[] = {"/bin/pwd", NULL};
    job.argv = pwd;
    pipe_deliver(&job, &msg, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", tmpdir);
    job.dir = "/nonexistent";
    pipe_deliver(&job, &msg, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", "/");

    const char *missing[] = {"/nonexistent/prog", NULL};
    job.argv = missing;
    pipe_deliver(&job, &msg, &r);
    assert_reply(&r, LOCAL_FAILED, "5.3.0",
                 "Cannot exec /nonexistent/prog: No such file or directory");

    const char *relative[] = {"prog", NULL};
    job.argv = relative;
    pipe_deliver(&job, &msg, &r);
    assert_int_equal(r.status, LOCAL_FAILED);
    assert_string_equal(r.enh, "5.3.5");
    close(fd);
}

/* The daemon ignores SIGPIPE; the program must get the default back (else `yes` here
 * complains "Broken pipe" on its stderr), and the caller's setting must be restored. */
static void test_pipe_signals_reset(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, now;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);
    struct local_reply r;
    run_sh("yes | head -c 1 >/dev/null", 30, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", "Sent");
    sigaction(SIGPIPE, NULL, &now);
    assert_ptr_equal(now.sa_handler, SIG_IGN);
    signal(SIGPIPE, SIG_DFL);
}

static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long pid = 0;
    assert_int_equal(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

/* Gone, or a zombie waiting for init. */
static bool pid_gone(pid_t pid)
{
    char path[64], stat_[256] = "";
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(stat_, 1, sizeof stat_ - 1, f);
    fclose(f);
    stat_[n] = '\0';
    const char *paren = strrchr(stat_, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static void test_pipe_timeout(void **state)
{
    (void)state;
    char cmd[256], pidfile[128];
    snprintf(pidfile, sizeof pidfile, "%s/bg.pid", tmpdir);
    /* a background grandchild in the program's process group dies with it */
    snprintf(cmd, sizeof cmd, "sleep 60 & echo $! > %s; wait", pidfile);
    struct local_reply r;
    run_sh(cmd, 1, &r);
    char want[300];
    snprintf(want, sizeof want, "Timeout waiting for %s", cmd);
    assert_reply(&r, LOCAL_DEFERRED, "4.3.0", want);
    pid_t bg = read_pid(pidfile);
    for (int i = 0; i < 50 && !pid_gone(bg); i++)
        usleep(100000);
    assert_true(pid_gone(bg));
}

static void test_pipe_timeout_term_ignored(void **state)
{
    (void)state;
    char cmd[256], pidfile[128];
    snprintf(pidfile, sizeof pidfile, "%s/stubborn.pid", tmpdir);
    snprintf(cmd, sizeof cmd, "trap '' TERM; echo $$ > %s; while :; do sleep 1; done", pidfile);
    struct local_reply r;
    run_sh(cmd, 1, &r);
    assert_int_equal(r.status, LOCAL_DEFERRED);
    assert_string_equal(r.enh, "4.3.0");
    assert_non_null(strstr(r.text, "Timeout waiting for trap"));
    /* pipe_deliver reaped it: no such process any more */
    pid_t pid = read_pid(pidfile);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

/* 1 MiB in, 200 kB out before the program reads anything: both pipes fill unless the
 * output is read while the message is written. */
static void test_pipe_big_in_big_out(void **state)
{
    (void)state;
    size_t len = 1 << 20;
    char *df = malloc(len);
    assert_non_null(df);
    for (size_t i = 0; i < len; i += 64) {
        memset(df + i, 'm', 62);
        memcpy(df + i + 62, "\r\n", 2);
    }
    struct local_reply r;
    run_sh_df("head -c 200000 /dev/zero | tr '\\0' a; wc -c | tr -d ' ' >&2", df, len, 20, &r);
    assert_int_equal(r.status, LOCAL_DELIVERED);
    assert_int_equal(strlen(r.text), 1000);
    assert_int_equal(strspn(r.text, "a"), 1000);

    /* a program that never reads: its exit status decides, no SIGPIPE for us */
    run_sh_df("exit 0", df, len, 20, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", "Sent");
    run_sh_df("exit 75", df, len, 20, &r);
    assert_reply(&r, LOCAL_DEFERRED, "4.0.0", "Deferred");

    /* what it counted is what was sent: 1 MiB less one CR a line */
    run_sh_df("wc -c | tr -d ' '", df, len, 20, &r);
    char want[32];
    snprintf(want, sizeof want, "%zu", len - len / 64);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0", want);
    free(df);
}

/* A df that cannot be read: the program is stopped before it sees end of file, so a
 * partial message never looks complete to it. */
static void test_pipe_unreadable_df(void **state)
{
    (void)state;
    char out[128], cmd[512];
    snprintf(out, sizeof out, "%s/partial", tmpdir);
    snprintf(cmd, sizeof cmd, "cat > %s.tmp && mv %s.tmp %s", out, out, out);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct pipe_job job = {.argv = argv, .env = test_env, .dir = tmpdir, .timeout_s = 30};
    int dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    struct mailbox_msg msg = {.fd = dirfd, .sender = "a@b", .arrival = ARRIVAL};
    struct local_reply r = {0};
    pipe_deliver(&job, &msg, &r);
    close(dirfd);
    assert_reply(&r, LOCAL_DEFERRED, "4.3.0", "reading the message: Is a directory");
    assert_int_equal(access(out, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_stdin),
        cmocka_unit_test(test_pipe_exit_statuses),
        cmocka_unit_test(test_pipe_env_and_dir),
        cmocka_unit_test(test_pipe_signals_reset),
        cmocka_unit_test(test_pipe_timeout),
        cmocka_unit_test(test_pipe_timeout_term_ignored),
        cmocka_unit_test(test_pipe_big_in_big_out),
        cmocka_unit_test(test_pipe_unreadable_df),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
