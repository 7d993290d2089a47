/* The durable spool against a real engine (one worker, no listeners) and real files in a
 * temporary directory: commits, group commit, abort, failures, a spool directory deleted,
 * recreated or renamed under it, what a message holds while it waits, recovery and scans.
 * Skips (77) where io_uring is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/spool.h"
#include "engine_usable.h"
#include "util/engine.h"
#include "util/log.h"

#define MSG_JOB  1
#define MSG_EXIT 2
#define MAX_MSGS 200

static char tmpdir[64];
static char spooldir[128];
/* The spool's hash_depth in this test: the default unless the test's state says. */
static unsigned depth;
static struct engine *eng;
static struct spool *sp;
static struct spool_worker *sw; /* touched on the worker thread only */

/* The job posted to the worker, and the semaphore its completions post. */
static void (*job_fn)(void *arg);
static void *job_arg;
static sem_t job_sem;

struct result {
    char qid[QID_LEN + 1];
    struct spool_msg *m;
    int err;
    bool called;
    bool write_failed; /* no cmocka asserts on the worker thread: they longjmp */
};
static struct result results[MAX_MSGS];

static struct envelope_rcpt test_rcpts[] = {
    {.addr = "alice@example.org", .state = ENV_RCPT_PENDING},
    {.addr = "bob@example.net", .orcpt = "rfc822;bob@example.net", .notify = 6},
};
static const struct envelope test_env = {
    .sender = "sender@example.com",
    .created = 1700000000,
    .helo = "client.example.com",
    .client_addr = "192.0.2.7",
    .proto = "ESMTP",
    .daemon = "MTA",
    .body = 8,
    .rcpts = test_rcpts,
    .n_rcpts = 2,
};

static void *on_worker_init(struct engine_worker *w, unsigned index)
{
    (void)index;
    sw = spool_worker_new(sp, w);
    return NULL;
}

static void on_worker_fini(struct engine_worker *w, void *ctx)
{
    (void)w;
    (void)ctx;
    spool_worker_free(sw);
    sw = NULL;
}

/* No listeners: the connection callbacks exist only because the engine requires them. */
static void *on_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                       const struct sockaddr *peer, socklen_t peerlen, const struct sockaddr *local,
                       socklen_t locallen)
{
    (void)w, (void)id, (void)listener, (void)peer, (void)peerlen, (void)local, (void)locallen;
    return NULL;
}

static void on_recv(void *ctx, const char *data, size_t len)
{
    (void)ctx, (void)data, (void)len;
}

static void on_closed(void *ctx, int err)
{
    (void)ctx, (void)err;
}

static void on_message(struct engine_worker *w, void *ctx, uint32_t msg)
{
    (void)ctx;
    if (msg == MSG_EXIT)
        engine_worker_exit(w);
    else
        job_fn(job_arg);
}

static void run_on_worker(void (*fn)(void *), void *arg)
{
    job_fn = fn;
    job_arg = arg;
    engine_post(eng, MSG_JOB);
}

/* Waits for `n` posts of job_sem, failing the test after 20 s. */
static void wait_posts(unsigned n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    for (unsigned i = 0; i < n; i++)
        if (sem_timedwait(&job_sem, &ts) < 0)
            fail_msg("timed out waiting for the worker (%u of %u)", i, n);
}

static void commit_done(void *arg, int err)
{
    struct result *r = arg;
    r->err = err;
    r->called = true;
    sem_post(&job_sem);
}

/* Runs fn on the worker and waits until it and everything it posts are done. */
static void on_worker(void (*fn)(void *), void *arg, unsigned posts)
{
    run_on_worker(fn, arg);
    wait_posts(posts);
}

static int setup(void **state)
{
    char err[256];
    struct spool_settings ss = {0};
    depth = *state ? *(const unsigned *)*state : SPOOL_HASH_DEPTH_DEFAULT;
    ss.hash_depth = depth;
    struct engine_settings es = {.workers = 1, .ring_entries = 256};
    struct engine_callbacks cb = {.worker_init = on_worker_init,
                                  .worker_fini = on_worker_fini,
                                  .on_message = on_message,
                                  .on_accept = on_accept,
                                  .on_recv = on_recv,
                                  .on_closed = on_closed};

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ringmail-spool-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    /* Two missing levels: spool_open creates parents too. */
    snprintf(spooldir, sizeof(spooldir), "%s/var/spool", tmpdir);
    setenv("RINGMAIL_TEST_SPOOL", spooldir, 1);
    ss.dir = spooldir;
    sp = spool_open(&ss, err, sizeof(err));
    if (!sp) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    memset(results, 0, sizeof(results));
    sem_init(&job_sem, 0, 0);
    eng = engine_new(&es, &cb, err, sizeof(err));
    if (!eng || engine_start(eng, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    engine_post(eng, MSG_EXIT);
    engine_join(eng);
    engine_free(eng);
    spool_close(sp);
    sem_destroy(&job_sem);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- files --- */

/* Where the spool keeps a file of a message; `kind` "" for a name in the top directory. */
static void path_of(char *out, size_t outlen, const char *kind, const char *qid)
{
    char rel[64];
    if (!*kind)
        snprintf(rel, sizeof(rel), "%s", qid);
    else
        assert_true(spool_msg_path(sp, kind, qid, rel, sizeof(rel)) > 0);
    snprintf(out, outlen, "%s/%s", spooldir, rel);
}

static char *slurp(const char *kind, const char *qid, size_t *len)
{
    char path[256];
    path_of(path, sizeof(path), kind, qid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return data;
}

/* A file by its name: a queue file goes where the spool keeps it. */
static void put_file(const char *name, const void *data, size_t len)
{
    char path[256], kind[3] = {name[0], name[1], '\0'};
    path_of(path, sizeof(path), strlen(name) == 2 + QID_LEN ? kind : "",
            strlen(name) == 2 + QID_LEN ? name + 2 : name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static bool exists(const char *kind, const char *qid)
{
    char path[256];
    struct stat st;
    path_of(path, sizeof(path), kind, qid);
    return stat(path, &st) == 0;
}

/* Files in a directory and its subdirectories, the spool's lock file aside. */
static unsigned count_files_in(const char *dir)
{
    unsigned n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char sub[512];
        struct stat st;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "ringmail.lock") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            n += count_files_in(sub);
        else
            n++;
    }
    closedir(d);
    return n;
}

static unsigned count_files(void)
{
    return count_files_in(spooldir);
}

static unsigned count_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the one opendir holds */
}

/* Aborts and detached commits report nothing: wait until the directory holds `n` files. */
static void wait_file_count(unsigned n)
{
    for (int i = 0; i < 2000 && count_files() != n; i++)
        usleep(5000);
    assert_int_equal(count_files(), n);
}

/* The committed message: qf parses back to test_env with id and size, and the data is
 * `data`: in the qf after the envelope when it is smaller than write_chunk (64 KiB here:
 * one file, no df), else in the df. */
static void assert_committed(const char *qid, const void *data, size_t len)
{
    for (unsigned i = 0; i < MAX_MSGS; i++)
        assert_false(results[i].write_failed);
    size_t n;
    char err[128];
    struct envelope e;
    char *qf = slurp("qf", qid, &n);
    assert_non_null(qf);
    if (envelope_parse(qf, n, &e, err, sizeof(err)) < 0)
        fail_msg("qf: %s", err);
    if (len < 65536) {
        assert_true(e.data_inline);
        assert_int_equal(n - e.data_offset, len);
        assert_memory_equal(qf + e.data_offset, data, len);
        assert_false(exists("df", qid));
    } else {
        assert_false(e.data_inline);
        size_t dn;
        char *df = slurp("df", qid, &dn);
        assert_non_null(df);
        assert_int_equal(dn, len);
        assert_memory_equal(df, data, len);
        free(df);
    }
    assert_string_equal(e.qid, qid);
    assert_int_equal(e.size, len);
    assert_string_equal(e.sender, test_env.sender);
    assert_string_equal(e.helo, test_env.helo);
    assert_int_equal(e.n_rcpts, 2);
    assert_string_equal(e.rcpts[1].orcpt, test_rcpts[1].orcpt);
    assert_int_equal(qf[e.rcpts[0].state_offset], 'P');
    envelope_free(&e);
    free(qf);
    assert_false(exists("tf", qid));
}

/* --- jobs (on the worker thread) --- */

struct write_job {
    const char *data;
    size_t len;
    const size_t *pieces; /* sizes cycled through; NULL = all at once */
    size_t npieces;
    unsigned count; /* messages */
    bool commit;
};

static void write_message(struct result *r, const struct write_job *j)
{
    r->m = spool_msg_new(sw, r->qid);
    for (size_t off = 0, i = 0; off < j->len; i++) {
        size_t n = j->pieces ? j->pieces[i % j->npieces] : j->len;
        if (n > j->len - off)
            n = j->len - off;
        r->write_failed |= spool_msg_write(r->m, j->data + off, n) < 0;
        off += n;
    }
}

static void job_write(void *arg)
{
    const struct write_job *j = arg;
    for (unsigned i = 0; i < j->count; i++) {
        write_message(&results[i], j);
        if (j->commit)
            spool_msg_commit(results[i].m, &test_env, commit_done, &results[i]);
    }
    if (!j->commit)
        sem_post(&job_sem);
}

static void job_abort(void *arg)
{
    (void)arg;
    spool_msg_abort(results[0].m);
    sem_post(&job_sem);
}

static void job_commit_detach(void *arg)
{
    (void)arg;
    spool_msg_commit(results[0].m, &test_env, commit_done, &results[0]);
    spool_msg_detach(results[0].m);
    sem_post(&job_sem);
}

struct stats {
    uint64_t commits, dir_syncs;
};

static void job_stats(void *arg)
{
    struct stats *s = arg;
    spool_worker_stats(sw, &s->commits, &s->dir_syncs);
    sem_post(&job_sem);
}

static char *pattern(size_t len)
{
    char *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)(i * 131 + i / 7);
    return p;
}

/* --- tests --- */

static void test_commit_small(void **state)
{
    (void)state;
    static const char msg[] = "Subject: hi\r\n\r\nhello\r\n";
    struct write_job j = {.data = msg, .len = sizeof(msg) - 1, .count = 1, .commit = true};
    struct stats st;
    on_worker(job_write, &j, 1);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, msg, j.len);
    assert_int_equal(count_files(), 1); /* one file: the qf holds the data */
    on_worker(job_stats, &st, 1);
    assert_int_equal(st.commits, 1);
    assert_int_equal(st.dir_syncs, 1);
}

/* 1 MiB in odd-sized pieces: many chunks, several writes in flight, exact bytes. */
static void test_commit_large(void **state)
{
    (void)state;
    static const size_t pieces[] = {1, 4093, 65537, 777, 131072, 3};
    size_t len = 1 << 20;
    char *data = pattern(len);
    struct write_job j = {
        .data = data, .len = len, .pieces = pieces, .npieces = 6, .count = 1, .commit = true};
    on_worker(job_write, &j, 1);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, data, len);
    free(data);
}

static void test_commit_empty(void **state)
{
    (void)state;
    struct write_job j = {.data = "", .len = 0, .count = 1, .commit = true};
    on_worker(job_write, &j, 1);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, "", 0);
}

/* 200 messages committed at once share directory fsyncs. */
static void test_group_commit(void **state)
{
    (void)state;
    char *data = pattern(1024);
    struct write_job j = {.data = data, .len = 1024, .count = MAX_MSGS, .commit = true};
    struct stats st;
    on_worker(job_write, &j, MAX_MSGS);
    for (unsigned i = 0; i < MAX_MSGS; i++) {
        assert_int_equal(results[i].err, 0);
        assert_true(exists("qf", results[i].qid));
    }
    assert_committed(results[MAX_MSGS - 1].qid, data, 1024);
    assert_int_equal(count_files(), MAX_MSGS);
    on_worker(job_stats, &st, 1);
    print_message("group commit: %" PRIu64 " commits, %" PRIu64 " directory fsyncs\n", st.commits,
                  st.dir_syncs);
    assert_int_equal(st.commits, MAX_MSGS);
    /* One fsync per subdirectory per round: flat, rounds are shared by many messages;
     * with subdirectories a round is up to 16 (or 256) fsyncs in parallel. */
    if (depth == 0)
        assert_true(st.dir_syncs * 4 <= st.commits);
    else
        assert_true(st.dir_syncs < st.commits);
    free(data);
}

/* Abort right after writing (opens in flight) and once the files surely exist. */
static void test_abort(void **state)
{
    (void)state;
    struct write_job j = {.data = "data\r\n", .len = 6, .count = 1};
    on_worker(job_write, &j, 1);
    on_worker(job_abort, NULL, 1);
    wait_file_count(0);

    char *big = pattern(200000); /* three full chunks: writes in flight too */
    j = (struct write_job){.data = big, .len = 200000, .count = 1};
    on_worker(job_write, &j, 1);
    wait_file_count(1); /* the df, created by the first full chunk; the tf waits for commit */
    on_worker(job_abort, NULL, 1);
    wait_file_count(0);
    assert_false(results[0].called);
    free(big);
}

/* The caller left: the commit still completes, silently. */
static void test_detach(void **state)
{
    (void)state;
    struct write_job j = {.data = "x\r\n", .len = 3, .count = 1};
    struct stats st;
    on_worker(job_write, &j, 1);
    on_worker(job_commit_detach, NULL, 1);
    for (int i = 0; i < 2000 && !exists("qf", results[0].qid); i++)
        usleep(5000);
    on_worker(job_stats, &st, 1);
    for (int i = 0; i < 2000 && st.commits == 0; i++) {
        usleep(5000);
        on_worker(job_stats, &st, 1);
    }
    assert_int_equal(st.commits, 1);
    assert_false(results[0].called);
    assert_committed(results[0].qid, "x\r\n", 3);
}

/* Runs `fn` with fd 2 going to a file; returns what was logged meanwhile (free it). */
static char *capture_log(void (*fn)(void *), void *arg)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/log", tmpdir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static unsigned count_lines_with(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        n += memmem(line, len, needle, strlen(needle)) != NULL;
        line += len + (end != NULL);
    }
    return n;
}

static void run_write_job(void *arg)
{
    on_worker(job_write, arg, 1);
}

/* The spool directory was moved aside and its path now names a file: the spool cannot
 * follow it, and the commit fails rather than store the message in the directory that was
 * moved away; nothing is left behind, and the failure is one log line (plus one saying
 * the directory cannot be followed, once, however many messages fail); the same failure
 * again within 10 s is only counted. */
static void test_fail_no_directory(void **state)
{
    (void)state;
    struct write_job j = {.data = "data\r\n", .len = 6, .count = 1, .commit = true};
    char aside[160];
    snprintf(aside, sizeof(aside), "%s/aside", tmpdir);
    assert_int_equal(rename(spooldir, aside), 0);
    FILE *f = fopen(spooldir, "w");
    assert_non_null(f);
    fclose(f);
    char *log = capture_log(run_write_job, &j);
    assert_int_equal(results[0].err, -ESTALE);
    assert_int_equal(count_lines_with(log, results[0].qid), 1);
    assert_int_equal(
        count_lines_with(log, "queue commit failed: create (the spool directory is gone) "), 1);
    assert_int_equal(count_lines_with(log, "Not a directory"), 1);
    free(log);
    log = capture_log(run_write_job, &j);
    assert_int_equal(results[0].err, -ESTALE);
    assert_int_equal(count_lines_with(log, "Not a directory"), 0); /* said once */
    assert_int_equal(count_lines_with(log, results[0].qid), 0);    /* same failure: counted */
    free(log);
    assert_int_equal(count_files_in(aside), 0);

    /* Put back: the same directory is the spool again, and mail is taken. */
    assert_int_equal(unlink(spooldir), 0);
    assert_int_equal(rename(aside, spooldir), 0);
    usleep(1100 * 1000); /* the worker looks at the path at most once a second */
    on_worker(job_write, &j, 1);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, "data\r\n", 6);
}

/* The spool directory was deleted (and not recreated): the spool recreates it, 0700, with
 * its lock, and the next message is stored there. */
static void test_follow_deleted(void **state)
{
    (void)state;
    struct write_job j = {.data = "data\r\n", .len = 6, .count = 1, .commit = true};
    struct stat st;
    assert_int_equal(system("rm -rf -- \"$RINGMAIL_TEST_SPOOL\""), 0);
    on_worker(job_write, &j, 1);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, "data\r\n", 6);
    assert_int_equal(stat(spooldir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_true(exists("", "ringmail.lock"));
}

/* Deleted and made again by a person (mode 0755): the spool follows the new directory and
 * makes it 0700. */
static void test_follow_recreated(void **state)
{
    (void)state;
    struct write_job j = {.data = "data\r\n", .len = 6, .count = 1, .commit = true};
    struct stat st;
    assert_int_equal(system("rm -rf -- \"$RINGMAIL_TEST_SPOOL\""), 0);
    assert_int_equal(mkdir(spooldir, 0755), 0);
    on_worker(job_write, &j, 1);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, "data\r\n", 6);
    assert_int_equal(stat(spooldir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
}

static void job_commit_first(void *arg)
{
    (void)arg;
    spool_msg_commit(results[0].m, &test_env, commit_done, &results[0]);
}

static void job_start_second(void *arg)
{
    const struct write_job *j = arg;
    write_message(&results[1], j);
    spool_msg_commit(results[1].m, &test_env, commit_done, &results[1]);
}

/* Renamed away: within a second the spool notices and recreates the directory at the
 * configured path; new mail goes there, and a message whose data was already in the
 * renamed directory is refused (4xx, the client sends it again) rather than acknowledged
 * there. */
static void test_follow_renamed(void **state)
{
    (void)state;
    char moved[160];
    char *big = pattern(100000); /* a full chunk: its df exists before the rename */
    struct write_job first = {.data = big, .len = 100000, .count = 1};
    struct write_job second = {.data = "new\r\n", .len = 5, .count = 1};
    snprintf(moved, sizeof(moved), "%s/moved", tmpdir);

    on_worker(job_write, &first, 1);
    wait_file_count(1);
    assert_int_equal(rename(spooldir, moved), 0);
    usleep(1100 * 1000); /* the worker looks at the path at most once a second */
    on_worker(job_start_second, &second, 1);
    assert_int_equal(results[1].err, 0);
    assert_committed(results[1].qid, "new\r\n", 5);
    on_worker(job_commit_first, NULL, 1);
    assert_int_equal(results[0].err, -ESTALE);
    assert_int_equal(count_files_in(moved), 0);
    assert_int_equal(count_files(), 1);
    free(big);
}

/* A person removed the subdirectories under a running daemon: the create that finds none
 * makes them again (logged once) and the message is stored, instead of every message
 * failing until a restart. */
static void test_subdirectories_removed(void **state)
{
    (void)state;
    struct write_job j = {.data = "data\r\n", .len = 6, .count = 1, .commit = true};
    assert_int_equal(system("rm -rf -- \"$RINGMAIL_TEST_SPOOL\"/[0-9a-f]"), 0);
    char *log = capture_log(run_write_job, &j);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, "data\r\n", 6);
    assert_int_equal(count_lines_with(log, "16 subdirectory(ies) were missing: made them again"),
                     1);
    free(log);
}

struct held {
    unsigned fds_before, fds_small, fds_large;
    size_t mem_small;
};

static void job_new_message(void *arg)
{
    (void)arg;
    results[0].m = spool_msg_new(sw, results[0].qid);
    sem_post(&job_sem);
}

static void job_write_more(void *arg)
{
    const struct write_job *j = arg;
    results[0].write_failed |= spool_msg_write(results[0].m, j->data, j->len) < 0;
    sem_post(&job_sem);
}

/* A session that stopped in DATA holds no spool descriptor and a buffer about the size of
 * what it sent; the df appears with the first full chunk, the tf only at the commit. */
static void test_idle_message_holds_little(void **state)
{
    (void)state;
    char *big = pattern(70000);
    struct write_job small = {.data = big, .len = 1000};
    struct write_job rest = {.data = big + 1000, .len = 69000};
    struct held h;

    on_worker(job_new_message, NULL, 1); /* also: the worker has started (its own fds) */
    h.fds_before = count_fds();
    struct mallinfo2 before = mallinfo2();
    on_worker(job_write_more, &small, 1);
    h.mem_small = mallinfo2().uordblks - before.uordblks;
    usleep(100 * 1000); /* a create would have completed by now */
    h.fds_small = count_fds();
    assert_int_equal(count_files(), 0);
    assert_int_equal(h.fds_small, h.fds_before);
    assert_true(h.mem_small < 16384); /* (0 under ASan, which has its own allocator) */

    on_worker(job_write_more, &rest, 1);
    wait_file_count(1);
    assert_true(exists("df", results[0].qid));
    h.fds_large = count_fds();
    assert_int_equal(h.fds_large, h.fds_before + 1);

    on_worker(job_commit_first, NULL, 1);
    assert_int_equal(results[0].err, 0);
    assert_committed(results[0].qid, big, 70000);
    free(big);
}

/* A write fails half way (file size limit): the error comes back, no file remains, and
 * the spool logs it once, saying what failed on which file. */
static void test_fail_write(void **state)
{
    (void)state;
    struct rlimit old, small = {.rlim_cur = 100000, .rlim_max = RLIM_INFINITY};
    size_t len = 1 << 20;
    char *data = pattern(len);
    struct write_job j = {.data = data, .len = len, .count = 1, .commit = true};
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    char *log = capture_log(run_write_job, &j);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(results[0].err, -EFBIG);
    assert_int_equal(count_files(), 0);
    assert_int_equal(count_lines_with(log, results[0].qid), 1);
    char line[128], df[64];
    assert_true(spool_msg_path(sp, "df", results[0].qid, df, sizeof(df)) > 0);
    snprintf(line, sizeof(line), "%s: queue commit failed: write %s: File too large",
             results[0].qid, df);
    assert_int_equal(count_lines_with(log, line), 1);
    free(log);
    free(data);
}

/* --- recovery and scans (synchronous, on this thread) --- */

static void put_message(const char *qid, const char *sender, const char *data, size_t len)
{
    struct envelope e = test_env;
    struct buf b;
    char name[32];
    memcpy(e.qid, qid, QID_LEN + 1);
    e.sender = (char *)sender;
    e.size = len;
    buf_init(&b, 0);
    assert_int_equal(envelope_write(&e, &b), 0);
    snprintf(name, sizeof(name), "qf%s", qid);
    put_file(name, b.data, b.len);
    snprintf(name, sizeof(name), "df%s", qid);
    put_file(name, data, len);
    buf_free(&b);
}

static void test_recover(void **state)
{
    (void)state;
    char err[256];
    struct spool_recovery rec;

    put_message("0000000000000001", "ok@example.com", "body\r\n", 6);
    put_file("tf0000000000000002", "V1\nI00", 6);      /* crash while writing the envelope */
    put_file("df0000000000000002", "partial", 7);      /* ... and its data */
    put_file("df0000000000000003", "no envelope", 11); /* crash before the tf */
    put_file("qf0000000000000004", "V1\ngarbage\n", 11);
    put_file("df0000000000000004", "kept", 4);
    put_message("0000000000000005", "nodf@example.com", "x", 1);
    char path[256];
    path_of(path, sizeof(path), "df", "0000000000000005");
    assert_int_equal(unlink(path), 0);
    put_message("0000000000000006", "short@example.com", "abc", 3);
    path_of(path, sizeof(path), "df", "0000000000000006");
    assert_int_equal(truncate(path, 1), 0); /* df does not match the recorded size */
    /* a power cut after the rename, before the qf's fsync: empty (never acknowledged) */
    put_message("0000000000000007", "empty@example.com", "abc", 3);
    path_of(path, sizeof(path), "qf", "0000000000000007");
    assert_int_equal(truncate(path, 0), 0);
    /* cut short with something in it: maybe an acknowledged one on a failing disk */
    put_message("0000000000000008", "cut@example.com", "abc", 3);
    path_of(path, sizeof(path), "qf", "0000000000000008");
    assert_int_equal(truncate(path, 40), 0);
    put_file("README", "not ours", 8);

    assert_int_equal(spool_recover(sp, NULL, NULL, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.messages, 1);
    assert_int_equal(rec.removed, 3);
    assert_int_equal(rec.damaged, 4);
    assert_int_equal(rec.empty, 1);
    assert_false(exists("qf", "0000000000000007"));
    assert_false(exists("Qf", "0000000000000007"));
    assert_false(exists("df", "0000000000000007")); /* never acknowledged: nothing kept */
    assert_true(exists("Qf", "0000000000000008"));
    assert_true(exists("df", "0000000000000008"));
    assert_true(exists("qf", "0000000000000001"));
    assert_true(exists("df", "0000000000000001"));
    assert_false(exists("tf", "0000000000000002"));
    assert_false(exists("df", "0000000000000002"));
    assert_false(exists("df", "0000000000000003"));
    assert_true(exists("Qf", "0000000000000004"));
    assert_true(exists("df", "0000000000000004")); /* kept for a person */
    assert_false(exists("qf", "0000000000000004"));
    assert_true(exists("Qf", "0000000000000005"));
    assert_true(exists("Qf", "0000000000000006"));
    assert_true(exists("df", "0000000000000006"));
    assert_true(exists("", "README"));

    /* A second pass finds a clean spool. */
    assert_int_equal(spool_recover(sp, NULL, NULL, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.messages, 1);
    assert_int_equal(rec.removed + rec.damaged + rec.empty, 0);
}

struct scan_seen {
    char qids[8][QID_LEN + 1];
    unsigned n, stop_after;
};

static int scan_fn(void *arg, const struct envelope *e)
{
    struct scan_seen *s = arg;
    memcpy(s->qids[s->n++], e->qid, QID_LEN + 1);
    return s->n == s->stop_after ? 42 : 0;
}

static void test_scan_order(void **state)
{
    (void)state;
    struct scan_seen seen = {0};
    put_message("0000000000000003", "c@example.com", "c", 1);
    put_message("0000000000000001", "a@example.com", "a", 1);
    put_message("000000000000000A", "b@example.com", "b", 1);
    put_file("tf0000000000000002", "V1\n", 3); /* not a message */
    put_file("df0000000000000002", "x", 1);
    assert_int_equal(spool_scan(sp, scan_fn, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.qids[0], "0000000000000001");
    assert_string_equal(seen.qids[1], "0000000000000003");
    assert_string_equal(seen.qids[2], "000000000000000A");

    seen = (struct scan_seen){.stop_after = 2};
    assert_int_equal(spool_scan(sp, scan_fn, &seen), 42);
    assert_int_equal(seen.n, 2);
}

/* Messages committed through the engine are what a later scan finds, in id order. */
static void test_commit_then_scan(void **state)
{
    (void)state;
    struct write_job j = {.data = "m\r\n", .len = 3, .count = 5, .commit = true};
    struct scan_seen seen = {0};
    on_worker(job_write, &j, 5);
    assert_int_equal(spool_scan(sp, scan_fn, &seen), 0);
    assert_int_equal(seen.n, 5);
    for (unsigned i = 0; i < 5; i++)
        assert_string_equal(seen.qids[i], results[i].qid);
}

/* --- the queue manager's operations (on the worker) --- */

struct op_result {
    int ret;     /* what the call returned */
    int err;     /* what the callback said */
    bool inside; /* the callback came from inside the call */
    struct envelope env;
    bool has_env;
    char *data;
    size_t len;
};

static bool in_call;
static const char *op_qid;
static bool op_inline; /* the message is one file: what its envelope says */
static struct envelope op_env;
static size_t op_idx[4];
static size_t op_n;

static void op_loaded(void *arg, int err, struct envelope *e, char *data, size_t len)
{
    struct op_result *r = arg;
    r->inside = in_call;
    r->err = err;
    r->has_env = e != NULL;
    if (e) {
        r->env = *e; /* its strings are ours now */
        r->data = data;
        r->len = len;
    }
    sem_post(&job_sem);
}

static void op_done(void *arg, int err)
{
    struct op_result *r = arg;
    r->inside = in_call;
    r->err = err;
    sem_post(&job_sem);
}

static void job_load(void *arg)
{
    struct op_result *r = arg;
    in_call = true;
    r->ret = spool_load(sw, op_qid, op_loaded, r);
    in_call = false;
    if (r->ret)
        sem_post(&job_sem);
}

static void job_update(void *arg)
{
    struct op_result *r = arg;
    in_call = true;
    r->ret = spool_update(sw, &op_env, op_idx, op_n, op_done, r);
    in_call = false;
    if (r->ret)
        sem_post(&job_sem);
}

static void job_load_envelope(void *arg)
{
    struct op_result *r = arg;
    in_call = true;
    r->ret = spool_load_envelope(sw, op_qid, op_loaded, r);
    in_call = false;
    if (r->ret)
        sem_post(&job_sem);
}

static void job_delete(void *arg)
{
    struct op_result *r = arg;
    in_call = true;
    r->ret = spool_delete(sw, op_qid, op_inline, op_done, r);
    in_call = false;
    if (r->ret)
        sem_post(&job_sem);
}

static void job_remove(void *arg)
{
    struct op_result *r = arg;
    in_call = true;
    r->ret = spool_remove(sw, op_qid, op_inline, op_done, r);
    in_call = false;
    if (r->ret)
        sem_post(&job_sem);
}

static struct op_result run_op(void (*job)(void *), const char *qid)
{
    struct op_result r = {0};
    op_qid = qid;
    on_worker(job, &r, 1);
    assert_false(r.inside);
    return r;
}

static void op_result_free(struct op_result *r)
{
    if (r->has_env)
        envelope_free(&r->env);
    free(r->data);
}

static void commit_one(const char *data, size_t len)
{
    struct write_job j = {.data = data, .len = len, .count = 1, .commit = true};
    on_worker(job_write, &j, 1);
    assert_int_equal(results[0].err, 0);
}

/* Load, update in place, load again, remove: what the queue manager does with a message. */
static void test_ops_load_update_remove(void **state)
{
    (void)state;
    static const char msg[] = "Subject: ops\r\n\r\nbody\r\n";
    commit_one(msg, sizeof(msg) - 1);
    const char *qid = results[0].qid;
    size_t before;
    free(slurp("qf", qid, &before));

    struct op_result r = run_op(job_load, qid);
    assert_int_equal(r.ret, 0);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.env.qid, qid);
    assert_string_equal(r.env.sender, test_env.sender);
    assert_int_equal(r.env.n_rcpts, 2);
    assert_int_equal(r.len, sizeof(msg) - 1);
    assert_memory_equal(r.data, msg, r.len);
    assert_int_equal(r.data[r.len], '\0');
    assert_true(r.env.data_inline); /* small: one file */
    op_inline = true;

    /* Recipient 1 delivered, the second attempt due at a later time. */
    op_env = r.env;
    op_env.rcpts[1].state = ENV_RCPT_DELIVERED;
    op_env.attempts = 2;
    op_env.next_attempt = 1700007200;
    op_env.last_reason = "Deferred: 451 4.3.0 \r\nlater";
    op_idx[0] = 1;
    op_n = 1;
    struct op_result u = run_op(job_update, qid);
    assert_int_equal(u.ret, 0);
    assert_int_equal(u.err, 0);
    op_result_free(&r);

    size_t n;
    char err[128];
    struct envelope e;
    char *qf = slurp("qf", qid, &n);
    assert_int_equal(n, before); /* in place: not one byte more or less */
    if (envelope_parse(qf, n, &e, err, sizeof(err)) < 0)
        fail_msg("qf after the update: %s", err);
    assert_int_equal(e.rcpts[0].state, ENV_RCPT_PENDING);
    assert_int_equal(e.rcpts[1].state, ENV_RCPT_DELIVERED);
    assert_int_equal(e.attempts, 2);
    assert_int_equal(e.next_attempt, 1700007200);
    assert_string_equal(e.last_reason, "Deferred: 451 4.3.0 ??later");
    envelope_free(&e);
    free(qf);

    r = run_op(job_load, qid);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.env.rcpts[1].state, ENV_RCPT_DELIVERED);
    assert_int_equal(r.env.attempts, 2);
    op_result_free(&r);

    r = run_op(job_remove, qid);
    assert_int_equal(r.ret, 0);
    assert_int_equal(r.err, 0);
    assert_false(exists("qf", qid));
    assert_false(exists("df", qid));
    assert_int_equal(count_files(), 0);

    r = run_op(job_load, qid);
    assert_int_equal(r.err, -ENOENT);
    assert_false(r.has_env);
    r = run_op(job_remove, qid); /* gone already: not an error */
    assert_int_equal(r.err, 0);
}

/* A message of a write_chunk or more keeps its df: loaded from there, removed with it. */
static void test_ops_two_files(void **state)
{
    (void)state;
    size_t len = 70000;
    char *data = pattern(len);
    commit_one(data, len);
    const char *qid = results[0].qid;
    assert_true(exists("df", qid));
    struct op_result r = run_op(job_load, qid);
    assert_int_equal(r.err, 0);
    assert_false(r.env.data_inline);
    assert_int_equal(r.env.data_offset, 0);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.data, data, len);
    op_result_free(&r);
    op_inline = false;
    r = run_op(job_delete, qid);
    assert_int_equal(r.err, 0);
    assert_int_equal(count_files(), 0);
    free(data);
}

/* The queue tools' operations: the envelope alone (no df read), a held schedule and a
 * cleared reason written in place, a qf from before the reason record updated without
 * one, and a delete (files gone, directory fsynced). */
static void test_ops_envelope_hold_delete(void **state)
{
    (void)state;
    commit_one("held\r\n", 6);
    const char *qid = results[0].qid;
    struct op_result r = run_op(job_load_envelope, qid);
    assert_int_equal(r.ret, 0);
    assert_int_equal(r.err, 0);
    assert_true(r.has_env);
    assert_null(r.data);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.env.n_rcpts, 2);

    op_env = r.env;
    op_env.next_attempt = ENVELOPE_NEXT_HELD;
    op_n = 0;
    struct op_result u = run_op(job_update, qid);
    assert_int_equal(u.err, 0);
    op_result_free(&r);
    r = run_op(job_load_envelope, qid);
    assert_true(r.env.next_attempt == ENVELOPE_NEXT_HELD);
    assert_null(r.env.last_reason);
    op_result_free(&r);

    op_inline = true;
    r = run_op(job_delete, qid);
    assert_int_equal(r.ret, 0);
    assert_int_equal(r.err, 0);
    assert_false(exists("qf", qid));
    assert_false(exists("df", qid));
    r = run_op(job_delete, qid); /* gone already: not an error */
    assert_int_equal(r.err, 0);

    static const char old[] = "V1\n"
                              "I0000000000000009\n"
                              "T00000000001700000000\n"
                              "N0000000000\n"
                              "W00000000000000000000\n"
                              "L00000000000000000003\n"
                              "B0\n"
                              "U0\n"
                              "X0\n"
                              "Sold@example.com\n"
                              "RP 00 - a@example.org\n"
                              ".\n";
    put_file("qf0000000000000009", old, sizeof(old) - 1);
    put_file("df0000000000000009", "abc", 3);
    r = run_op(job_load, "0000000000000009");
    assert_int_equal(r.err, 0);
    assert_int_equal(r.env.last_reason_offset, 0);
    op_env = r.env;
    op_env.attempts = 1;
    op_env.next_attempt = 1700000300;
    op_env.last_reason = "Deferred: not recorded";
    u = run_op(job_update, "0000000000000009");
    assert_int_equal(u.err, 0);
    op_result_free(&r);
    size_t n;
    char *qf = slurp("qf", "0000000000000009", &n);
    assert_int_equal(n, sizeof(old) - 1);
    assert_non_null(memmem(qf, n, "N0000000001\nW00000000001700000300\n", 34));
    free(qf);
    r = run_op(job_remove, "0000000000000009");
    assert_int_equal(r.err, 0);
}

static void run_damaged_load(void *arg)
{
    struct op_result *r = arg;
    *r = run_op(job_load, op_qid);
}

/* A qf that does not parse, a df missing or of another size: EBADMSG, set aside as Qf
 * with its df (as recovery does), the reason logged once; a later load finds nothing. */
static void test_ops_load_damaged(void **state)
{
    (void)state;
    static const struct {
        const char *qid;
        bool garbage, no_df, short_df;
        const char *why;
    } cases[] = {
        {"0000000000000001", true, false, false, "line 2: unknown record"},
        {"0000000000000002", false, true, false, "df0000000000000002: No such file"},
        {"0000000000000003", false, false, true,
         "df0000000000000003 has 2 bytes, the envelope says 3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *qid = cases[i].qid;
        char name[32], path[256];
        put_message(qid, "d@example.com", "abc", 3);
        if (cases[i].garbage) {
            snprintf(name, sizeof(name), "qf%s", qid);
            put_file(name, "V1\ngarbage\n", 11);
        }
        path_of(path, sizeof(path), "df", qid);
        if (cases[i].no_df)
            assert_int_equal(unlink(path), 0);
        if (cases[i].short_df)
            assert_int_equal(truncate(path, 2), 0);
        struct op_result r;
        op_qid = qid;
        char *log = capture_log(run_damaged_load, &r);
        assert_int_equal(r.err, -EBADMSG);
        assert_false(r.has_env);
        assert_null(r.data);
        assert_int_equal(count_lines_with(log, qid), 1);
        assert_int_equal(count_lines_with(log, "damaged queue file moved to"), 1);
        if (!strstr(log, cases[i].why))
            fail_msg("log lacks '%s': %s", cases[i].why, log);
        free(log);
        assert_false(exists("qf", qid));
        assert_true(exists("Qf", qid));
        assert_int_equal(exists("df", qid), !cases[i].no_df);
        r = run_op(job_load, qid);
        assert_int_equal(r.err, -ENOENT);
    }

    /* One file whose data was cut short: the parse sees it, as a short df. */
    commit_one("Subject: cut\r\n\r\n", 17);
    char qid[QID_LEN + 1], path[256];
    memcpy(qid, results[0].qid, sizeof(qid));
    path_of(path, sizeof(path), "qf", qid);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 2), 0);
    struct op_result r;
    op_qid = qid;
    char *log = capture_log(run_damaged_load, &r);
    assert_int_equal(r.err, -EBADMSG);
    if (!strstr(log, "truncated: 15 octets of data, the L record says 17"))
        fail_msg("log lacks the reason: %s", log);
    free(log);
    assert_true(exists("Qf", qid));
    assert_int_equal(count_files(), 6); /* four Qf (this one alone) and two df above */
}

/* A caller's mistakes: an envelope that was not parsed (no offsets), an index out of
 * range: EINVAL from the callback, the file untouched; a bad queue id: no callback. */
static void test_ops_invalid(void **state)
{
    (void)state;
    commit_one("x\r\n", 3);
    const char *qid = results[0].qid;
    size_t n0, n1;
    char *before = slurp("qf", qid, &n0);

    op_env = test_env;
    memcpy(op_env.qid, qid, QID_LEN + 1);
    op_n = 0;
    struct op_result r = run_op(job_update, qid);
    assert_int_equal(r.ret, 0);
    assert_int_equal(r.err, -EINVAL);

    r = run_op(job_load, qid);
    assert_int_equal(r.err, 0);
    op_env = r.env;
    op_idx[0] = 7;
    op_n = 1;
    struct op_result u = run_op(job_update, qid);
    assert_int_equal(u.err, -EINVAL);
    op_result_free(&r);

    char *after = slurp("qf", qid, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    r = run_op(job_load, "not-a-queue-id");
    assert_int_equal(r.ret, -EINVAL);
    r = run_op(job_remove, "../../etc/passwd");
    assert_int_equal(r.ret, -EINVAL);
}

/* --- layout --- */

/* Queue ids made in a burst (same second, counter running) spread evenly over the
 * subdirectories, and the paths have the documented form. */
static void test_layout_spread(void **state)
{
    (void)state;
    static const unsigned depths[] = {1, 2};
    for (size_t d = 0; d < 2; d++) {
        char err[256], dir[160];
        snprintf(dir, sizeof(dir), "%s/layout%u", tmpdir, depths[d]);
        struct spool_settings ss = {.dir = dir, .hash_depth = depths[d]};
        struct spool *l = spool_open(&ss, err, sizeof(err));
        assert_non_null(l);
        unsigned buckets = depths[d] == 1 ? 16 : 256, per = 200, counts[256] = {0};
        for (unsigned i = 0; i < buckets * per; i++) {
            char qid[QID_LEN + 1], path[64];
            qid_new(qid, 0);
            int n = spool_msg_path(l, "qf", qid, path, sizeof(path));
            assert_int_equal(n, (int)(2 * depths[d] + 2 + QID_LEN));
            assert_string_equal(path + 2 * depths[d] + 2, qid);
            unsigned b = 0;
            for (unsigned k = 0; k < depths[d]; k++) {
                const char *hex = "0123456789abcdef", *c = strchr(hex, path[2 * k]);
                assert_non_null(c);
                assert_int_equal(path[2 * k + 1], '/');
                b = b * 16 + (unsigned)(c - hex);
            }
            counts[b]++;
        }
        unsigned lo = per, hi = 0;
        for (unsigned b = 0; b < buckets; b++) {
            lo = counts[b] < lo ? counts[b] : lo;
            hi = counts[b] > hi ? counts[b] : hi;
        }
        print_message("depth %u: %u ids per subdirectory on average, %u to %u\n", depths[d], per,
                      lo, hi);
        assert_true(lo >= per * 6 / 10 && hi <= per * 14 / 10);
        char small[8];
        assert_int_equal(spool_msg_path(l, "qf", "0000000000000001", small, sizeof(small)), -1);
        spool_close(l);
    }
}

/* --- recovery across depths, and what it hands to the queue --- */

/* A message's file written where a spool of `layout`'s depth keeps it, in `dir`. */
static void put_at(struct spool *layout, const char *dir, const char *kind, const char *qid,
                   const void *data, size_t len)
{
    char rel[64], path[256];
    assert_true(spool_msg_path(layout, kind, qid, rel, sizeof(rel)) > 0);
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
        *p = '/';
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void put_envelope_at(struct spool *layout, const char *dir, const char *qid, size_t size,
                            time_t next_attempt)
{
    struct envelope e = test_env;
    struct buf b;
    memcpy(e.qid, qid, QID_LEN + 1);
    e.size = size;
    e.next_attempt = next_attempt;
    buf_init(&b, 0);
    assert_int_equal(envelope_write(&e, &b), 0);
    put_at(layout, dir, "qf", qid, b.data, b.len);
    buf_free(&b);
}

static bool exists_at(struct spool *layout, const char *dir, const char *kind, const char *qid)
{
    char rel[64], path[256];
    struct stat st;
    assert_true(spool_msg_path(layout, kind, qid, rel, sizeof(rel)) > 0);
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return lstat(path, &st) == 0;
}

static struct spool *open_at(const char *dir, unsigned d)
{
    char err[256];
    struct spool_settings ss = {.dir = dir, .hash_depth = d};
    struct spool *l = spool_open(&ss, err, sizeof(err));
    if (!l)
        fail_msg("%s", err);
    return l;
}

struct collected {
    char qids[16][QID_LEN + 1];
    time_t next[16];
    unsigned n, fail_at;
};

static int collect(void *arg, const struct envelope *e)
{
    struct collected *c = arg;
    if (c->n >= 16 || c->n + 1 == c->fail_at)
        return -1;
    memcpy(c->qids[c->n], e->qid, QID_LEN + 1);
    c->next[c->n++] = e->next_attempt;
    return 0;
}

/* hash_depth changed between two runs: recovery finds messages at every level (even a
 * message whose df already moved and whose qf did not: a crash in the middle of a move),
 * moves them where the current depth wants them, and hands each to the queue, oldest
 * first, with its next attempt. Then back to flat, then two levels. */
static void test_recover_depth_change(void **state)
{
    (void)state;
    char dir[160], err[256];
    struct spool_recovery rec;
    snprintf(dir, sizeof(dir), "%s/moving", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    /* Layouts only: where each depth puts a file (each spool on its own directory). */
    char d0[160], d1[160], d2[160];
    snprintf(d0, sizeof(d0), "%s/layout0", tmpdir);
    snprintf(d1, sizeof(d1), "%s/layout1", tmpdir);
    snprintf(d2, sizeof(d2), "%s/layout2", tmpdir);
    struct spool *l0 = open_at(d0, 0), *l1 = open_at(d1, 1), *l2 = open_at(d2, 2);

    put_envelope_at(l0, dir, "0000000000000001", 1, 1700000001); /* flat */
    put_at(l0, dir, "df", "0000000000000001", "a", 1);
    put_envelope_at(l2, dir, "0000000000000002", 2, 1700000002); /* two levels */
    put_at(l2, dir, "df", "0000000000000002", "bb", 2);
    put_envelope_at(l2, dir, "0000000000000003", 3, 1700000003); /* df moved, qf not */
    put_at(l1, dir, "df", "0000000000000003", "ccc", 3);
    put_at(l2, dir, "tf", "0000000000000004", "V1\n", 3); /* never acknowledged */
    put_at(l0, dir, "df", "0000000000000004", "d", 1);

    struct collected c = {0};
    struct spool *s1 = open_at(dir, 1);
    assert_int_equal(spool_recover(s1, collect, &c, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.messages, 3);
    assert_int_equal(rec.moved, 3);
    assert_int_equal(rec.removed, 2);
    assert_int_equal(rec.damaged, 0);
    assert_int_equal(c.n, 3);
    for (unsigned i = 0; i < 3; i++) {
        char qid[QID_LEN + 1];
        snprintf(qid, sizeof(qid), "000000000000000%u", i + 1);
        assert_string_equal(c.qids[i], qid);
        assert_int_equal(c.next[i], 1700000001 + i);
        assert_true(exists_at(l1, dir, "qf", qid) && exists_at(l1, dir, "df", qid));
        assert_false(exists_at(l2, dir, "qf", qid) || exists_at(l0, dir, "qf", qid));
    }
    assert_false(exists_at(l0, dir, "df", "0000000000000004"));
    assert_int_equal(spool_recover(s1, NULL, NULL, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.messages + rec.moved * 100 + rec.removed * 100, 3); /* all settled */
    spool_close(s1);

    struct spool *s0 = open_at(dir, 0); /* back to flat */
    assert_int_equal(spool_recover(s0, NULL, NULL, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.messages, 3);
    assert_int_equal(rec.moved, 3);
    assert_true(exists_at(l0, dir, "qf", "0000000000000002"));
    spool_close(s0);

    struct spool *s2 = open_at(dir, 2); /* and two levels */
    c = (struct collected){0};
    assert_int_equal(spool_recover(s2, collect, &c, &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.moved, 3);
    assert_int_equal(c.n, 3);
    assert_true(exists_at(l2, dir, "df", "0000000000000003"));

    /* The queue cannot take a message (out of memory): recovery fails, says where. */
    c = (struct collected){.fail_at = 2};
    assert_int_equal(spool_recover(s2, collect, &c, &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "recovery stopped at 0000000000000002"));
    spool_close(s2);
    spool_close(l0);
    spool_close(l1);
    spool_close(l2);
}

static void count_listed(void *arg, const char *qid)
{
    (void)qid;
    ++*(unsigned *)arg;
}

/* The two passes the daemon runs around `ready`: the listing reads no envelope (it moves,
 * removes leftovers and counts), the reading hands over what is good and sets aside what
 * is not, here a qf damaged between the two passes. */
static void test_recover_two_passes(void **state)
{
    (void)state;
    char dir[160], err[256];
    struct spool_recovery rec;
    struct spool_pending *p;
    snprintf(dir, sizeof(dir), "%s/twopass", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    struct spool *s1 = open_at(dir, 1);
    const char *ids[] = {"0000000000000001", "0000000000000002", "0000000000000003"};
    for (unsigned i = 0; i < 3; i++) {
        put_envelope_at(s1, dir, ids[i], 2, 1700000001 + i);
        put_at(s1, dir, "df", ids[i], "ab", 2);
    }
    put_at(s1, dir, "tf", "0000000000000004", "V1\n", 3);

    unsigned listed = 0;
    struct collected c = {0};
    assert_int_equal(spool_recover_list(s1, count_listed, &listed, &rec, &p, err, sizeof(err)), 0);
    assert_int_equal(listed, 3);
    assert_int_equal(spool_pending_count(p), 3);
    assert_int_equal(rec.removed, 1);
    assert_int_equal(rec.messages + rec.damaged, 0);
    assert_false(exists_at(s1, dir, "tf", "0000000000000004"));

    put_at(s1, dir, "qf", ids[1], "V1\nnot an envelope\n", 19);
    assert_int_equal(spool_recover_read(s1, p, collect, &c, &rec, err, sizeof(err)), 0);
    spool_pending_free(p);
    assert_int_equal(rec.messages, 2);
    assert_int_equal(rec.damaged, 1);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.qids[0], ids[0]);
    assert_string_equal(c.qids[1], ids[2]);
    assert_int_equal(c.next[1], 1700000003);
    assert_true(exists_at(s1, dir, "Qf", ids[1]) && exists_at(s1, dir, "df", ids[1]));
    assert_false(exists_at(s1, dir, "qf", ids[1]));
    spool_close(s1);
}

struct many {
    unsigned n;
};

static void run_recover_many(void *arg)
{
    char err[256];
    struct spool_recovery rec;
    assert_int_equal(spool_recover(sp, NULL, NULL, &rec, err, sizeof(err)), 0);
    ((struct many *)arg)->n = rec.messages;
}

/* Beyond 1,000 messages recovery stops listing them one by one and says how many more. */
static void test_recover_log_capped(void **state)
{
    (void)state;
    struct many m = {0};
    for (unsigned i = 0; i < 1003; i++) {
        char qid[QID_LEN + 1];
        snprintf(qid, sizeof(qid), "00000000000%05u", i);
        put_message(qid, "many@example.com", "m", 1);
    }
    log_set_level(LOG_LVL_INFO);
    char *log = capture_log(run_recover_many, &m);
    assert_int_equal(m.n, 1003);
    assert_int_equal(count_lines_with(log, ": recovered, from=<many@example.com>"), 1000);
    assert_int_equal(count_lines_with(log, "3 more message(s) recovered, not listed one by one"),
                     1);
    free(log);
}

static const unsigned flat = 0, deep = 2;

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_no_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_recreated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_renamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subdirectories_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_message_holds_little, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_then_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops_load_update_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops_envelope_hold_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops_two_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops_load_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_depth_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_two_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_log_capped, setup, teardown),
        /* the same at the other depths: flat and two levels */
        cmocka_unit_test_prestate_setup_teardown(test_commit_small, setup, teardown, (void *)&flat),
        cmocka_unit_test_prestate_setup_teardown(test_group_commit, setup, teardown, (void *)&flat),
        cmocka_unit_test_prestate_setup_teardown(test_recover, setup, teardown, (void *)&flat),
        cmocka_unit_test_prestate_setup_teardown(test_ops_load_update_remove, setup, teardown,
                                                 (void *)&flat),
        cmocka_unit_test_prestate_setup_teardown(test_commit_small, setup, teardown, (void *)&deep),
        cmocka_unit_test_prestate_setup_teardown(test_group_commit, setup, teardown, (void *)&deep),
        cmocka_unit_test_prestate_setup_teardown(test_recover, setup, teardown, (void *)&deep),
        cmocka_unit_test_prestate_setup_teardown(test_ops_load_update_remove, setup, teardown,
                                                 (void *)&deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
