/*
 * bench/queue_bench.c — the million-message queue benchmark's two C parts (issue 9).
 *
 *   queue_bench fill SPOOL N [--depth D] [--rcpts R] [--threads T] [--next S | --held]
 *                    [--maildrop NAME]
 *       Makes a spool holding N committed, deferred messages without a daemon: for each, a
 *       queue id from qid_new, a ~400-byte df and a qf from envelope_write, written where
 *       spool_msg_path says (hash_depth D, default 1), with one attempt made and the next
 *       one a day ahead, so a daemon started on it recovers every message and delivers
 *       none while it is measured. R recipients each (default 1), pending. No fsync per
 *       file (a benchmark fixture, not a commit): one syncfs at the end. The spool is
 *       opened (and locked) with spool_open, as the daemon would, and must not be in use;
 *       it may already hold messages (fill it several times). For tests of the recovery:
 *       --next S puts the next attempt S seconds from now instead (0: due at once),
 *       --held holds every message (ENVELOPE_NEXT_HELD), --maildrop NAME makes the last
 *       message (the newest id) name maildrop file NAME, as one submitted by the pickup.
 *
 *   queue_bench scan SPOOL [--threads T] [--stat-df] [--dirfd-top] [--stat-only]
 *       What start-up recovery's I/O costs, and what threads would save: lists every
 *       shard (readdir), then T threads read and parse the qf files (openat in the shard's
 *       directory, one read into a 4 KiB buffer, close, envelope_parse). --stat-df also
 *       fstatat's each df (recovery's size check); --dirfd-top opens "7/qf..." from the
 *       spool's directory as recovery does instead of "qf..." from the shard's;
 *       --stat-only reads no qf, only its inode (fstatat: what a recovery that kept the
 *       next attempt in the qf's mtime, as Postfix's deferred queue does, would read). A
 *       prototype of the recovery changes reported for queue/spool_recover.c; run it
 *       with a cold page cache (echo 3 > /proc/sys/vm/drop_caches) and warm.
 *
 *   queue_bench index N [--seed S]
 *       The queue manager's "what is due next" at N entries, with queue/queue_index.h
 *       directly: N pushes (ids from qid_new, due times spread over a week), the index's
 *       own memory (queue_index_memory) and the process's RSS growth per entry, peek,
 *       pop-and-push-back (a delivery that defers: the steady state of a deferred queue),
 *       pop of everything. Times per operation in nanoseconds.
 *
 * Both print one JSON object on stdout (bench/queue-bench.py reads it) and a short
 * human line on stderr. No timing is asserted anywhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/envelope.h"
#include "queue/qid.h"
#include "queue/queue_index.h"
#include "queue/spool.h"
#include "util/buf.h"

#define QUEUE_BENCH_MAX_THREADS 16
#define QUEUE_BENCH_MAX_RCPTS   100

static double queue_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void queue_bench_usage(void)
{
    fprintf(stderr, "usage: queue_bench fill SPOOL N [--depth D] [--rcpts R] [--threads T] "
                    "[--next S | --held] [--maildrop NAME]\n"
                    "       queue_bench scan SPOOL [--threads T] [--stat-df] [--dirfd-top] "
                    "[--stat-only]\n"
                    "       queue_bench index N [--seed S]\n");
    exit(2);
}

static unsigned long queue_bench_number(const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > max) {
        fprintf(stderr, "queue_bench: not a number up to %lu: %s\n", max, s);
        exit(2);
    }
    return v;
}

/* --- fill --- */

struct queue_bench_fill {
    const struct spool *sp;
    int dirfd;
    unsigned long first, count;
    unsigned rcpts;
    unsigned worker;
    time_t now;
    int64_t next_attempt;
    char *maildrop; /* for message `maildrop_at` */
    unsigned long maildrop_at;
    unsigned long written;
    char error[256];
};

static int queue_bench_write_file(int dirfd, const char *path, const void *data, size_t len)
{
    int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, data, len);
    int saved = errno;
    if (close(fd) < 0 && n >= 0)
        return -1;
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

static void *queue_bench_fill_run(void *arg)
{
    struct queue_bench_fill *f = arg;
    struct envelope_rcpt rcpts[QUEUE_BENCH_MAX_RCPTS];
    char addrs[QUEUE_BENCH_MAX_RCPTS][64];
    char df[1024], msgid[96], path[128];
    struct buf qf;
    buf_init(&qf, 0);
    for (unsigned long i = f->first; i < f->first + f->count; i++) {
        char qid[QID_LEN + 1];
        qid_new(qid, f->worker);
        /* the id in the Message-Id tells the messages of several fills apart */
        snprintf(msgid, sizeof(msgid), "<bench.%lu.%s@client.example>", i, qid);
        int dlen = snprintf(df, sizeof(df),
                            "Received: from client.example (localhost [127.0.0.1])\r\n"
                            "\tby mx.bench (ringmail) with ESMTP id %s\r\n"
                            "\tfor <user%lu@dest%lu.example>; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
                            "From: bench@client.example\r\nTo: user%lu@dest%lu.example\r\n"
                            "Subject: queue bench %lu\r\nMessage-Id: %s\r\n\r\n"
                            "A deferred message of the million-message queue.\r\n",
                            qid, i, i % 100, i, i % 100, i, msgid);
        for (unsigned r = 0; r < f->rcpts; r++) {
            snprintf(addrs[r], sizeof(addrs[r]), "user%lu.%u@dest%lu.example", i, r, i % 100);
            rcpts[r] = (struct envelope_rcpt){.addr = addrs[r], .state = ENV_RCPT_PENDING};
        }
        struct envelope e = {
            .sender = "bench@client.example",
            .created = f->now - 3600,
            .size = (uint64_t)dlen,
            .helo = "client.example",
            .client_addr = "127.0.0.1",
            .proto = "ESMTP",
            .daemon = "MTA",
            .msgid = msgid,
            .body = 7,
            .attempts = 1,
            .next_attempt = f->next_attempt,
            .maildrop = f->maildrop && i == f->maildrop_at ? f->maildrop : NULL,
            .rcpts = rcpts,
            .n_rcpts = f->rcpts,
        };
        memcpy(e.qid, qid, sizeof(e.qid));
        qf.len = 0;
        if (envelope_write(&e, &qf) < 0) {
            snprintf(f->error, sizeof(f->error), "%s: envelope_write failed", qid);
            break;
        }
        if (spool_msg_path(f->sp, "df", qid, path, sizeof(path)) < 0 ||
            queue_bench_write_file(f->dirfd, path, df, (size_t)dlen) < 0 ||
            spool_msg_path(f->sp, "qf", qid, path, sizeof(path)) < 0 ||
            queue_bench_write_file(f->dirfd, path, qf.data, qf.len) < 0) {
            snprintf(f->error, sizeof(f->error), "%s: %s", path, strerror(errno));
            break;
        }
        f->written++;
    }
    buf_free(&qf);
    return NULL;
}

static int queue_bench_fill(int argc, char **argv)
{
    if (argc < 4)
        queue_bench_usage();
    const char *dir = argv[2];
    unsigned long n = queue_bench_number(argv[3], 100000000);
    unsigned depth = SPOOL_HASH_DEPTH_DEFAULT, rcpts = 1, threads = 2;
    time_t now = time(NULL);
    int64_t next_attempt = (int64_t)now + 86400;
    char *maildrop = NULL;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--held") == 0) {
            next_attempt = ENVELOPE_NEXT_HELD;
            continue;
        }
        if (i + 1 >= argc)
            queue_bench_usage();
        if (strcmp(argv[i], "--next") == 0)
            next_attempt = (int64_t)now + (int64_t)queue_bench_number(argv[++i], 365 * 86400);
        else if (strcmp(argv[i], "--maildrop") == 0)
            maildrop = argv[++i];
        else if (strcmp(argv[i], "--depth") == 0)
            depth = (unsigned)queue_bench_number(argv[++i], 2);
        else if (strcmp(argv[i], "--rcpts") == 0)
            rcpts = (unsigned)queue_bench_number(argv[++i], QUEUE_BENCH_MAX_RCPTS);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = (unsigned)queue_bench_number(argv[++i], QUEUE_BENCH_MAX_THREADS);
        else
            queue_bench_usage();
    }
    if (rcpts == 0 || threads == 0)
        queue_bench_usage();

    char err[512];
    struct spool_settings ss = {.dir = dir, .hash_depth = depth};
    struct spool *sp = spool_open(&ss, err, sizeof(err));
    if (!sp) {
        fprintf(stderr, "queue_bench: %s\n", err);
        return 1;
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        fprintf(stderr, "queue_bench: %s: %s\n", dir, strerror(errno));
        spool_close(sp);
        return 1;
    }
    struct queue_bench_fill fills[QUEUE_BENCH_MAX_THREADS];
    pthread_t tids[QUEUE_BENCH_MAX_THREADS];
    double t0 = queue_bench_now();
    for (unsigned t = 0; t < threads; t++) {
        unsigned long first = n * t / threads, last = n * (t + 1) / threads;
        fills[t] = (struct queue_bench_fill){.sp = sp,
                                             .dirfd = dirfd,
                                             .first = first,
                                             .count = last - first,
                                             .rcpts = rcpts,
                                             .worker = t,
                                             .now = now,
                                             .next_attempt = next_attempt,
                                             .maildrop = maildrop,
                                             .maildrop_at = n - 1};
        if (pthread_create(&tids[t], NULL, queue_bench_fill_run, &fills[t]) != 0) {
            fprintf(stderr, "queue_bench: cannot start a thread\n");
            exit(1);
        }
    }
    unsigned long written = 0;
    int rc = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        written += fills[t].written;
        if (fills[t].error[0]) {
            fprintf(stderr, "queue_bench: %s\n", fills[t].error);
            rc = 1;
        }
    }
    double t_write = queue_bench_now() - t0;
    if (syncfs(dirfd) < 0) {
        fprintf(stderr, "queue_bench: syncfs %s: %s\n", dir, strerror(errno));
        rc = 1;
    }
    double t_all = queue_bench_now() - t0;
    close(dirfd);
    spool_close(sp);
    printf("{\"mode\": \"fill\", \"messages\": %lu, \"rcpts\": %u, \"hash_depth\": %u, "
           "\"threads\": %u, \"write_s\": %.3f, \"with_sync_s\": %.3f}\n",
           written, rcpts, depth, threads, t_write, t_all);
    fprintf(stderr, "queue_bench: %lu messages in %s (depth %u) in %.1f s (%.1f s with syncfs)\n",
            written, dir, depth, t_write, t_all);
    return rc;
}

/* --- scan --- */

struct queue_bench_name {
    unsigned char shard;
    char name[2 + QID_LEN + 1];
};

struct queue_bench_scan {
    const struct queue_bench_name *names;
    size_t n, next_batch;
    pthread_mutex_t lock;
    int topfd, shardfd[16];
    bool stat_df, dirfd_top, stat_only;
};

struct queue_bench_scanner {
    struct queue_bench_scan *s;
    unsigned long parsed, failed;
};

/* Names are handed out in batches so threads share the work without a lock per file. */
static void *queue_bench_scan_run(void *arg)
{
    struct queue_bench_scanner *t = arg;
    struct queue_bench_scan *s = t->s;
    char buf[4096], path[64], why[128];
    const size_t batch = 256;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        size_t first = s->next_batch;
        s->next_batch += batch;
        pthread_mutex_unlock(&s->lock);
        if (first >= s->n)
            break;
        size_t last = first + batch < s->n ? first + batch : s->n;
        for (size_t i = first; i < last; i++) {
            const struct queue_bench_name *nm = &s->names[i];
            struct stat st;
            if (s->stat_only) {
                if (fstatat(s->shardfd[nm->shard], nm->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                    t->failed++;
                else
                    t->parsed++;
                continue;
            }
            int fd;
            if (s->dirfd_top) {
                snprintf(path, sizeof(path), "%x/%s", nm->shard, nm->name);
                fd = openat(s->topfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            } else {
                fd = openat(s->shardfd[nm->shard], nm->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            }
            ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
            if (fd >= 0)
                close(fd);
            struct envelope e;
            if (len <= 0 || envelope_parse(buf, (size_t)len, &e, why, sizeof(why)) < 0) {
                t->failed++;
                continue;
            }
            if (s->stat_df) {
                char df[2 + QID_LEN + 1];
                snprintf(df, sizeof(df), "df%s", nm->name + 2);
                if (fstatat(s->shardfd[nm->shard], df, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    (uint64_t)st.st_size != e.size)
                    t->failed++;
            }
            envelope_free(&e);
            t->parsed++;
        }
    }
    return NULL;
}

static int queue_bench_scan(int argc, char **argv)
{
    if (argc < 3)
        queue_bench_usage();
    struct queue_bench_scan s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    unsigned threads = 1;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)queue_bench_number(argv[++i], QUEUE_BENCH_MAX_THREADS * 8);
        else if (strcmp(argv[i], "--stat-df") == 0)
            s.stat_df = true;
        else if (strcmp(argv[i], "--dirfd-top") == 0)
            s.dirfd_top = true;
        else if (strcmp(argv[i], "--stat-only") == 0)
            s.stat_only = true;
        else
            queue_bench_usage();
    }
    if (threads == 0)
        queue_bench_usage();
    double t0 = queue_bench_now();
    if ((s.topfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "queue_bench: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    struct queue_bench_name *names = NULL;
    size_t n = 0, cap = 0;
    for (unsigned sh = 0; sh < 16; sh++) {
        char sub[2] = {"0123456789abcdef"[sh], '\0'};
        s.shardfd[sh] = openat(s.topfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int fd = s.shardfd[sh] < 0 ? -1 : openat(s.topfd, sub, O_RDONLY | O_DIRECTORY);
        DIR *dir = fd < 0 ? NULL : fdopendir(fd);
        if (!dir) {
            fprintf(stderr, "queue_bench: %s/%s: %s (a hash_depth 1 spool?)\n", argv[2], sub,
                    strerror(errno));
            return 1;
        }
        const struct dirent *d;
        while ((d = readdir(dir))) {
            if (strncmp(d->d_name, "qf", 2) != 0 || strlen(d->d_name) != 2 + QID_LEN)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 65536;
                struct queue_bench_name *nv = realloc(names, cap * sizeof(*names));
                if (!nv) {
                    fprintf(stderr, "queue_bench: out of memory\n");
                    return 1;
                }
                names = nv;
            }
            names[n].shard = (unsigned char)sh;
            memcpy(names[n].name, d->d_name, sizeof(names[n].name));
            n++;
        }
        closedir(dir);
    }
    double t_list = queue_bench_now() - t0;
    s.names = names;
    s.n = n;
    struct queue_bench_scanner sc[QUEUE_BENCH_MAX_THREADS * 8];
    pthread_t tids[QUEUE_BENCH_MAX_THREADS * 8];
    t0 = queue_bench_now();
    for (unsigned t = 0; t < threads; t++) {
        sc[t] = (struct queue_bench_scanner){.s = &s};
        if (pthread_create(&tids[t], NULL, queue_bench_scan_run, &sc[t]) != 0) {
            fprintf(stderr, "queue_bench: cannot start a thread\n");
            return 1;
        }
    }
    unsigned long parsed = 0, failed = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        parsed += sc[t].parsed;
        failed += sc[t].failed;
    }
    double t_read = queue_bench_now() - t0;
    for (unsigned sh = 0; sh < 16; sh++)
        close(s.shardfd[sh]);
    close(s.topfd);
    free(names);
    printf("{\"mode\": \"scan\", \"qf\": %zu, \"parsed\": %lu, \"failed\": %lu, \"threads\": %u, "
           "\"stat_df\": %s, \"dirfd_top\": %s, \"stat_only\": %s, \"list_s\": %.3f, \"read_s\": "
           "%.3f}\n",
           n, parsed, failed, threads, s.stat_df ? "true" : "false", s.dirfd_top ? "true" : "false",
           s.stat_only ? "true" : "false", t_list, t_read);
    fprintf(stderr,
            "queue_bench: %zu qf listed in %.2f s, read and parsed by %u thread(s) in "
            "%.2f s (%lu failed)\n",
            n, t_list, threads, t_read, failed);
    return failed ? 1 : 0;
}

/* --- index --- */

static uint64_t queue_bench_rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* xorshift64*: reproducible due times without libc's rand state. */
static uint64_t queue_bench_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static int queue_bench_index(int argc, char **argv)
{
    if (argc < 3)
        queue_bench_usage();
    size_t n = queue_bench_number(argv[2], 100000000);
    uint64_t seed = 88172645463325252ull;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = queue_bench_number(argv[++i], ~0ul) | 1;
        else
            queue_bench_usage();
    }
    if (n == 0)
        queue_bench_usage();
    char(*ids)[QID_LEN + 1] = malloc(n * sizeof(*ids));
    if (!ids) {
        fprintf(stderr, "queue_bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        qid_new(ids[i], 0);
    const int64_t base = 1767225600; /* 2026-01-01: the absolute value does not matter */
    const int64_t week = 7 * 86400;

    uint64_t rss0 = queue_bench_rss_bytes();
    struct queue_index *qi = queue_index_new();
    if (!qi) {
        fprintf(stderr, "queue_bench: out of memory\n");
        return 1;
    }
    double t0 = queue_bench_now();
    for (size_t i = 0; i < n; i++)
        if (queue_index_push(qi, ids[i], base + (int64_t)(queue_bench_rand(&seed) % week)) < 0) {
            fprintf(stderr, "queue_bench: push failed at %zu\n", i);
            return 1;
        }
    double t_push = queue_bench_now() - t0;
    uint64_t rss_grown = queue_bench_rss_bytes() - rss0;
    size_t mem = queue_index_memory(qi);

    /* peek: what the timer re-arms from after every change */
    const size_t peeks = 10000000;
    int64_t due, sum = 0;
    char qid[QID_LEN + 1];
    t0 = queue_bench_now();
    for (size_t i = 0; i < peeks; i++) {
        queue_index_peek(qi, qid, &due);
        sum += due + qid[i % QID_LEN];
    }
    double t_peek = queue_bench_now() - t0;

    /* the next due message out, and back in later (deferred again) */
    const size_t cycles = n < 1000000 ? n : 1000000;
    t0 = queue_bench_now();
    for (size_t i = 0; i < cycles; i++) {
        queue_index_pop(qi, qid, &due);
        queue_index_push(qi, qid, due + 3600 + (int64_t)(queue_bench_rand(&seed) % 3600));
    }
    double t_cycle = queue_bench_now() - t0;

    /* a lookup by id (sendmail -qI, a message committed again) */
    t0 = queue_bench_now();
    size_t found = 0;
    for (size_t i = 0; i < cycles; i++)
        found += queue_index_contains(qi, ids[queue_bench_rand(&seed) % n], NULL);
    double t_contains = queue_bench_now() - t0;

    size_t count = queue_index_count(qi);
    t0 = queue_bench_now();
    int64_t last = INT64_MIN;
    size_t out_of_order = 0;
    while (queue_index_pop(qi, NULL, &due)) {
        out_of_order += due < last;
        last = due;
    }
    double t_drain = queue_bench_now() - t0;
    queue_index_free(qi);
    free(ids);

    printf("{\"mode\": \"index\", \"entries\": %zu, \"push_ns\": %.1f, \"index_bytes\": %zu, "
           "\"index_bytes_per_entry\": %.1f, \"rss_growth_per_entry\": %.1f, \"peek_ns\": %.2f, "
           "\"pop_push_ns\": %.1f, \"contains_ns\": %.1f, \"pop_ns\": %.1f, "
           "\"found\": %zu, \"out_of_order\": %zu, \"checksum\": %" PRId64 "}\n",
           n, t_push / (double)n * 1e9, mem, (double)mem / (double)n, (double)rss_grown / (double)n,
           t_peek / (double)peeks * 1e9, t_cycle / (double)cycles * 1e9,
           t_contains / (double)cycles * 1e9, t_drain / (double)count * 1e9, found, out_of_order,
           sum);
    fprintf(stderr,
            "queue_bench: index of %zu: %.0f B/entry (RSS %.0f B/entry), push %.0f ns, peek "
            "%.1f ns, pop+push %.0f ns, contains %.0f ns, pop %.0f ns\n",
            n, (double)mem / (double)n, (double)rss_grown / (double)n, t_push / (double)n * 1e9,
            t_peek / (double)peeks * 1e9, t_cycle / (double)cycles * 1e9,
            t_contains / (double)cycles * 1e9, t_drain / (double)count * 1e9);
    return out_of_order ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        queue_bench_usage();
    if (strcmp(argv[1], "fill") == 0)
        return queue_bench_fill(argc, argv);
    if (strcmp(argv[1], "index") == 0)
        return queue_bench_index(argc, argv);
    if (strcmp(argv[1], "scan") == 0)
        return queue_bench_scan(argc, argv);
    queue_bench_usage();
}
