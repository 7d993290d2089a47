/* How long start-up recovery takes for a large queue: 100,000 messages (or
 * RINGMAIL_SPOOL_SCALE) written straight into a spool at the default hash_depth, then
 * spool_recover with a callback that counts what the queue index would get. The figures
 * are printed, never asserted (machines are noisy); what is asserted is that every
 * message comes back, in id order, and that the log holds no more than the first 1,000
 * per-message lines. On tmpfs where there is one, so the figure is the spool's own work
 * (listing, sorting, reading every qf, a stat of every df), not the disk's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/spool.h"
#include "util/log.h"

static char tmpdir[64];
static char spooldir[128];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/dev/shm/ringmail-scale-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ringmail-scale-XXXXXX");
        if (!mkdtemp(tmpdir))
            return -1;
    }
    snprintf(spooldir, sizeof(spooldir), "%s/spool", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put(int dirfd, const char *path, const void *data, size_t len)
{
    int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

struct counted {
    unsigned n;
    char last[QID_LEN + 1];
    bool out_of_order;
    int64_t due_sum;
};

static int count_message(void *arg, const struct envelope *e)
{
    struct counted *c = arg;
    c->out_of_order |= c->n && strcmp(c->last, e->qid) >= 0;
    memcpy(c->last, e->qid, QID_LEN + 1);
    c->due_sum += e->next_attempt;
    c->n++;
    return 0;
}

/* fd 2 into a file while recovery logs; back with log_restore. */
static int log_to_file(const char *path)
{
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static void log_restore(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

static unsigned lines_with(const char *path, const char *needle)
{
    char line[512];
    unsigned n = 0;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static long max_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static void test_recover_many(void **state)
{
    (void)state;
    const char *env = getenv("RINGMAIL_SPOOL_SCALE");
    unsigned n = env ? (unsigned)strtoul(env, NULL, 10) : 100000;
    char err[256], path[64];
    static const char body[] = "Subject: scale\r\n\r\nbody\r\n";
    struct envelope_rcpt rcpt = {.addr = "rcpt@example.org", .state = ENV_RCPT_PENDING};
    struct envelope e = {.sender = "sender@example.com",
                         .created = 1700000000,
                         .size = sizeof(body) - 1,
                         .helo = "client.example.com",
                         .client_addr = "192.0.2.7",
                         .proto = "ESMTP",
                         .daemon = "MTA",
                         .rcpts = &rcpt,
                         .n_rcpts = 1};
    struct spool_settings ss = {.dir = spooldir, .hash_depth = SPOOL_HASH_DEPTH_DEFAULT};
    struct spool_recovery rec;
    struct buf b;

    struct spool *sp = spool_open(&ss, err, sizeof(err));
    assert_non_null(sp);
    int dirfd = open(spooldir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dirfd >= 0);
    double t0 = now_s();
    buf_init(&b, 0);
    for (unsigned i = 0; i < n; i++) {
        qid_new(e.qid, i % 8);
        e.next_attempt = 1700000000 + i % 3600;
        b.len = 0;
        assert_int_equal(envelope_write(&e, &b), 0);
        assert_true(spool_msg_path(sp, "df", e.qid, path, sizeof(path)) > 0);
        put(dirfd, path, body, sizeof(body) - 1);
        assert_true(spool_msg_path(sp, "qf", e.qid, path, sizeof(path)) > 0);
        put(dirfd, path, b.data, b.len);
    }
    buf_free(&b);
    close(dirfd);
    double t1 = now_s();

    struct counted c = {0};
    char logpath[160];
    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    long rss_before = max_rss_kib();
    int saved = log_to_file(logpath);
    int r = spool_recover(sp, count_message, &c, &rec, err, sizeof(err));
    double t2 = now_s();
    log_restore(saved);
    assert_int_equal(r, 0);
    assert_int_equal(lines_with(logpath, ": recovered, from=<"), n < 1000 ? n : 1000);
    assert_int_equal(rec.messages, n);
    assert_int_equal(c.n, n);
    assert_false(c.out_of_order);
    assert_int_equal(rec.removed + rec.damaged + rec.moved, 0);
    print_message("%u messages written in %.2f s; recovered in %.2f s (%.1f us a message), "
                  "peak RSS %ld KiB (%ld before)\n",
                  n, t1 - t0, t2 - t1, (t2 - t1) * 1e6 / (n ? n : 1), max_rss_kib(), rss_before);

    /* Every message moved: hash_depth 1 → 2. */
    spool_close(sp);
    ss.hash_depth = 2;
    assert_non_null(sp = spool_open(&ss, err, sizeof(err)));
    c = (struct counted){0};
    double t3 = now_s();
    saved = log_to_file(logpath);
    r = spool_recover(sp, count_message, &c, &rec, err, sizeof(err));
    double t4 = now_s();
    log_restore(saved);
    assert_int_equal(r, 0);
    assert_int_equal(rec.moved, n);
    assert_int_equal(c.n, n);
    print_message("the same, moving every message to hash_depth 2: %.2f s\n", t4 - t3);
    spool_close(sp);
}

int main(void)
{
    log_set_level(LOG_LVL_INFO); /* the first 1,000 "recovered" lines are part of the work */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recover_many, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
