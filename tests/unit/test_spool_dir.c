/* The spool directory, synchronously (no engine): the lock that keeps a second daemon off a
 * spool (also across fork), recovery that neither follows a symbolic link nor hangs on a
 * FIFO, and the free-space check behind MAIL's 452. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/spool.h"
#include "queue/spool_fs.h"
#include "util/log.h"

static char tmpdir[64];
static char spooldir[128];
/* The spool last opened: where its queue files go. */
static struct spool *layout;

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ringmail-spooldir-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(spooldir, sizeof(spooldir), "%s/spool", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    layout = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct spool *open_spool(uint64_t min_free_blocks, char *err, size_t errlen)
{
    struct spool_settings ss = {.dir = spooldir,
                                .min_free_blocks = min_free_blocks,
                                .hash_depth = SPOOL_HASH_DEPTH_DEFAULT};
    struct spool *sp = spool_open(&ss, err, errlen);
    if (sp)
        layout = sp;
    return sp;
}

/* A queue file ("qf<qid>", ...) goes where the spool keeps it; other names at the top. */
static void path_of(char *out, size_t outlen, const char *name)
{
    char rel[64], kind[3] = {name[0], name[1], '\0'};
    if (strlen(name) != 2 + QID_LEN || !layout ||
        spool_msg_path(layout, kind, name + 2, rel, sizeof(rel)) < 0)
        snprintf(rel, sizeof(rel), "%s", name);
    snprintf(out, outlen, "%s/%s", spooldir, rel);
}

static void put_file(const char *name, const void *data, size_t len)
{
    char path[256];
    path_of(path, sizeof(path), name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static bool exists(const char *name)
{
    char path[256];
    struct stat st;
    path_of(path, sizeof(path), name);
    return lstat(path, &st) == 0;
}

/* --- the lock --- */

static void test_lock_second_open_refused(void **state)
{
    (void)state;
    char err[256], want[256];
    struct spool *sp = open_spool(0, err, sizeof(err));
    assert_non_null(sp);
    assert_null(open_spool(0, err, sizeof(err)));
    snprintf(want, sizeof(want), "spool %s is in use by another ringmaild (pid %ld)", spooldir,
             (long)getpid());
    assert_string_equal(err, want);
    spool_close(sp);
    sp = open_spool(0, err, sizeof(err));
    assert_non_null(sp); /* released by close */
    spool_close(sp);
}

/* The privileged parent hands the spool to the engine it forks: the lock stays held while
 * the child lives, though the parent closed its copy; the pid in the error is the one that
 * opened it (the parent's, the pid operators signal). */
static void test_lock_survives_fork(void **state)
{
    (void)state;
    char err[256], want[256];
    int ready[2], quit[2];
    struct spool *sp = open_spool(0, err, sizeof(err));
    assert_non_null(sp);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(quit), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char c = 'x';
        close(ready[0]);
        close(quit[1]);
        (void)!write(ready[1], &c, 1);
        (void)!read(quit[0], &c, 1); /* until the parent is done */
        _exit(0);
    }
    char c;
    close(ready[1]);
    close(quit[0]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    spool_close(sp); /* the parent's copy, as daemon()'s parent exits */
    assert_null(open_spool(0, err, sizeof(err)));
    snprintf(want, sizeof(want), "spool %s is in use by another ringmaild (pid %ld)", spooldir,
             (long)getpid());
    assert_string_equal(err, want);
    close(quit[1]);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    sp = open_spool(0, err, sizeof(err));
    assert_non_null(sp); /* the last holder is gone */
    spool_close(sp);
}

/* The lock file is not a queue file: recovery and scans leave it alone. */
static int count_fn(void *arg, const struct envelope *e)
{
    (void)e;
    ++*(unsigned *)arg;
    return 0;
}

static void test_lock_file_ignored_by_scans(void **state)
{
    (void)state;
    char err[256];
    struct spool_recovery rec;
    unsigned n = 0;
    struct spool *sp = open_spool(0, err, sizeof(err));
    assert_non_null(sp);
    assert_int_equal(spool_recover(sp, NULL, NULL, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.messages + rec.removed + rec.damaged, 0);
    assert_int_equal(spool_scan(sp, count_fn, &n), 0);
    assert_int_equal(n, 0);
    assert_true(exists("ringmail.lock"));
    spool_close(sp);
}

/* A lock file someone replaced by a FIFO or a link is refused, not opened through. */
static void test_lock_file_not_regular(void **state)
{
    (void)state;
    char err[256], path[256];
    assert_int_equal(mkdir(spooldir, 0700), 0);
    path_of(path, sizeof(path), "ringmail.lock");
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_null(open_spool(0, err, sizeof(err)));
    assert_non_null(strstr(err, "ringmail.lock is not a regular file"));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_null(open_spool(0, err, sizeof(err)));
    assert_non_null(strstr(err, "ringmail.lock"));
}

/* --- recovery hygiene --- */

static struct envelope_rcpt rcpt = {.addr = "alice@example.org", .state = ENV_RCPT_PENDING};

static void write_qf(const char *dir_or_null, const char *qid, uint64_t size)
{
    struct envelope e = {.sender = "s@example.com", .created = 1, .rcpts = &rcpt, .n_rcpts = 1};
    struct buf b;
    char name[64];
    memcpy(e.qid, qid, QID_LEN + 1);
    e.size = size;
    buf_init(&b, 0);
    assert_int_equal(envelope_write(&e, &b), 0);
    if (dir_or_null) {
        char path[256];
        snprintf(path, sizeof(path), "%s/qf%s", dir_or_null, qid);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
        fclose(f);
    } else {
        snprintf(name, sizeof(name), "qf%s", qid);
        put_file(name, b.data, b.len);
    }
    buf_free(&b);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "recovery hung (a FIFO was opened for reading)\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(1);
}

/* A FIFO named like a queue file must not hang start-up (it used to, forever, with
 * SIGTERM blocked); a symbolic link must not be followed, even to a valid queue file. */
static void test_recover_fifo_and_symlinks(void **state)
{
    (void)state;
    char err[256], path[256], outside[256];
    struct spool_recovery rec;
    unsigned n = 0;
    struct spool *sp = open_spool(0, err, sizeof(err));
    assert_non_null(sp);

    path_of(path, sizeof(path), "qf0000000000000001"); /* a FIFO as the envelope */
    assert_int_equal(mkfifo(path, 0600), 0);
    put_file("df0000000000000001", "x", 1);

    write_qf(tmpdir, "0000000000000002", 1); /* a link to a valid envelope outside */
    snprintf(outside, sizeof(outside), "%s/qf0000000000000002", tmpdir);
    path_of(path, sizeof(path), "qf0000000000000002");
    assert_int_equal(symlink(outside, path), 0);
    put_file("df0000000000000002", "x", 1);

    write_qf(NULL, "0000000000000003", 5); /* a valid envelope, its data a link */
    snprintf(outside, sizeof(outside), "%s/data", tmpdir);
    FILE *f = fopen(outside, "wb");
    assert_non_null(f);
    fputs("12345", f);
    fclose(f);
    path_of(path, sizeof(path), "df0000000000000003");
    assert_int_equal(symlink(outside, path), 0);

    write_qf(NULL, "0000000000000004", 0); /* a valid envelope, its data a FIFO */
    path_of(path, sizeof(path), "df0000000000000004");
    assert_int_equal(mkfifo(path, 0600), 0);

    path_of(path, sizeof(path), "df0000000000000005"); /* an orphan FIFO: removed */
    assert_int_equal(mkfifo(path, 0600), 0);

    signal(SIGALRM, on_alarm);
    alarm(10);
    assert_int_equal(spool_scan(sp, count_fn, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(spool_recover(sp, NULL, NULL, &rec, err, sizeof(err)), 0);
    alarm(0);
    assert_int_equal(rec.messages, 0);
    assert_int_equal(rec.damaged, 4);
    assert_int_equal(rec.removed, 1);
    for (int i = 1; i <= 4; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Qf000000000000000%d", i);
        assert_true(exists(name));
        snprintf(name, sizeof(name), "qf000000000000000%d", i);
        assert_false(exists(name));
    }
    assert_false(exists("df0000000000000005"));
    snprintf(outside, sizeof(outside), "%s/qf0000000000000002", tmpdir);
    struct stat st;
    assert_int_equal(stat(outside, &st), 0); /* the link's target is untouched */
    spool_close(sp);
}

/* --- free space --- */

/* Only spool_space_check runs: a backend that does nothing is enough. */
static const struct spool_fs_ops no_io;

static uint64_t free_blocks(uint64_t *block)
{
    struct statvfs vfs;
    assert_int_equal(statvfs(spooldir, &vfs), 0);
    *block = vfs.f_frsize;
    return vfs.f_bavail;
}

static void test_space_check(void **state)
{
    (void)state;
    char err[256];
    uint64_t block;
    struct spool *sp = open_spool(0, err, sizeof(err));
    assert_non_null(sp);
    uint64_t avail = free_blocks(&block);
    struct spool_worker *sw = spool_worker_new_fs(sp, &no_io, NULL, 0);
    assert_non_null(sw);
    assert_true(spool_space_check(sw, 0));
    assert_true(spool_space_check(sw, 4096));
    assert_false(spool_space_check(sw, (avail + 1000) * block)); /* SIZE= beyond the disk */
    assert_false(spool_space_check(sw, UINT64_MAX));
    spool_worker_free(sw);
    spool_close(sp);

    /* More blocks kept in reserve than there are free: no message fits. */
    sp = open_spool(avail + 100000, err, sizeof(err));
    assert_non_null(sp);
    sw = spool_worker_new_fs(sp, &no_io, NULL, 0);
    assert_non_null(sw);
    assert_false(spool_space_check(sw, 0));
    assert_false(spool_space_check(sw, 1));
    spool_worker_free(sw);
    spool_close(sp);

    /* The reserve and the message add up (sendmail: size / block + 1 beyond the reserve). */
    avail = free_blocks(&block);
    sp = open_spool(avail / 2, err, sizeof(err));
    assert_non_null(sp);
    sw = spool_worker_new_fs(sp, &no_io, NULL, 0);
    assert_non_null(sw);
    assert_true(spool_space_check(sw, (avail / 4) * block));
    assert_false(spool_space_check(sw, (avail / 2 + avail / 4) * block));
    spool_worker_free(sw);
    spool_close(sp);
}

int main(void)
{
    log_set_level(LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lock_second_open_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_survives_fork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_file_ignored_by_scans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_file_not_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_fifo_and_symlinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_space_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
