/* A message's data read back and written again before its commit (spool_msg_read,
 * spool_msg_restart, spool_msg_size: what mail filters need), against a real engine worker
 * and real files. The worker's file operations are the io_uring ones behind a gate that
 * can hold writes and reads before they reach the kernel, so "a write in flight" and "a
 * read in flight" are states the test sets up, not races it hopes for. write_chunk is
 * small (CHUNK) so that a few kilobytes span the memory/df boundary. Skips (77) where
 * io_uring is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "engine_fixture.h"
#include "queue/spool.h"
#include "queue/spool_fs.h"

#define CHUNK     4096
#define MAX_HELD  32
#define MAX_PIECE (4 * CHUNK) /* the longest read a test asks for */

static char tmpdir[64];
static char spooldir[128];
static struct spool *sp;
static struct spool_worker *sw; /* touched on the worker thread only */

/* --- the gate: the io_uring file operations, some held on demand --- */

enum held_kind { HELD_WRITE, HELD_READ, HELD_CREATE, HELD_UNLINK, HELD_KINDS };
#define HOLD(kind) (1u << (kind))

struct held {
    struct engine_op proxy; /* what the kernel completes; passed on to op */
    struct engine_op *op;
    enum held_kind kind;
    bool used, waiting; /* waiting: not given to the kernel yet */
    int fd;             /* the file, or the directory of a create or unlink */
    const char *name;
    void *rbuf;
    const void *wdata;
    unsigned len;
    uint64_t off;
};

/* On the worker; the counters are read by the test under F.lock. */
static struct {
    struct spool_fs_ops ops;
    struct engine_worker *w;
    unsigned hold; /* HOLD() bits */
    struct held slot[MAX_HELD];
    /* per kind: given to the gate, held now, completed */
    unsigned issued[HELD_KINDS], held[HELD_KINDS], done[HELD_KINDS];
} G;

/* Counted done only once the spool has handled the completion: whatever it issues there
 * (the new df's create after the old one's unlink) is counted issued first, so the test
 * never sees every operation done while the next is about to start. */
static void held_complete(struct engine_op *proxy, int res)
{
    struct held *h = (struct held *)(void *)proxy;
    struct engine_op *op = h->op;
    op->complete(op, res);
    pthread_mutex_lock(&F.lock);
    h->used = false;
    G.done[h->kind]++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static void held_submit(struct held *h)
{
    h->waiting = false;
    switch (h->kind) {
    case HELD_WRITE:
        spool_fs_uring.write(G.w, &h->proxy, h->fd, h->wdata, h->len, h->off);
        break;
    case HELD_READ:
        spool_fs_uring.read(G.w, &h->proxy, h->fd, h->rbuf, h->len, h->off);
        break;
    case HELD_CREATE:
        spool_fs_uring.create(G.w, &h->proxy, h->fd, h->name);
        break;
    default:
        spool_fs_uring.unlink(G.w, &h->proxy, h->fd, h->name);
        break;
    }
}

static void held_add(struct held h)
{
    bool hold = G.hold & HOLD(h.kind);
    pthread_mutex_lock(&F.lock);
    struct held *s = NULL;
    for (unsigned i = 0; i < MAX_HELD && !s; i++)
        if (!G.slot[i].used)
            s = &G.slot[i];
    if (!s)
        abort(); /* the test keeps far fewer operations in flight */
    *s = h;
    s->proxy.complete = held_complete;
    s->used = true;
    s->waiting = hold;
    G.issued[h.kind]++;
    G.held[h.kind] += hold;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
    if (!hold)
        held_submit(s);
}

static void gate_write(void *ctx, struct engine_op *op, int fd, const void *data, unsigned len,
                       uint64_t off)
{
    (void)ctx;
    held_add((struct held){
        .op = op, .kind = HELD_WRITE, .fd = fd, .wdata = data, .len = len, .off = off});
}

static void gate_read(void *ctx, struct engine_op *op, int fd, void *buf, unsigned len,
                      uint64_t off)
{
    (void)ctx;
    held_add(
        (struct held){.op = op, .kind = HELD_READ, .fd = fd, .rbuf = buf, .len = len, .off = off});
}

static void gate_create(void *ctx, struct engine_op *op, int dirfd, const char *name)
{
    (void)ctx;
    held_add((struct held){.op = op, .kind = HELD_CREATE, .fd = dirfd, .name = name});
}

static void gate_unlink(void *ctx, struct engine_op *op, int dirfd, const char *name)
{
    (void)ctx;
    held_add((struct held){.op = op, .kind = HELD_UNLINK, .fd = dirfd, .name = name});
}

/* Lets the held operations of `kind` at file offset `off` (UINT64_MAX: all) go. */
static struct {
    enum held_kind kind;
    uint64_t off;
} release_what;

static void job_release(struct engine_worker *w)
{
    (void)w;
    for (unsigned i = 0; i < MAX_HELD; i++) {
        struct held *h = &G.slot[i];
        if (h->used && h->waiting && h->kind == release_what.kind &&
            (release_what.off == UINT64_MAX || h->off == release_what.off)) {
            pthread_mutex_lock(&F.lock);
            G.held[h->kind]--;
            pthread_mutex_unlock(&F.lock);
            held_submit(h);
        }
    }
}

static void release(enum held_kind kind, uint64_t off)
{
    release_what.kind = kind;
    release_what.off = off;
    run(job_release);
}

static unsigned hold_what;

static void job_hold(struct engine_worker *w)
{
    (void)w;
    G.hold = hold_what;
}

/* From now on, the operations of the kinds in `mask` are held (those already held stay
 * so until released). */
static void hold(unsigned mask)
{
    hold_what = mask;
    run(job_hold);
}

static void release_all(void)
{
    hold(0);
    for (enum held_kind k = 0; k < HELD_KINDS; k++)
        release(k, UINT64_MAX);
}

/* --- the engine and the spool --- */

static void *on_worker_init(struct engine_worker *w, unsigned index)
{
    G.w = w;
    sw = spool_worker_new_fs(sp, &G.ops, w, index);
    return engine_fixture_worker_init(w, index);
}

static void on_worker_fini(struct engine_worker *w, void *ctx)
{
    (void)w, (void)ctx;
    spool_worker_free(sw);
    sw = NULL;
}

/* --- files --- */

static void path_of(char *out, size_t outlen, const char *kind, const char *qid)
{
    char rel[64];
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

/* Files in the spool and its subdirectories, the lock file aside. */
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
        n += lstat(sub, &st) == 0 && S_ISDIR(st.st_mode) ? count_files_in(sub) : 1;
    }
    closedir(d);
    return n;
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
    return n - 1;
}

/* Every operation given to the gate has completed (and been handled). */
static bool gate_idle(void)
{
    pthread_mutex_lock(&F.lock);
    bool idle = true;
    for (int k = 0; k < HELD_KINDS; k++)
        idle &= G.issued[k] == G.done[k];
    pthread_mutex_unlock(&F.lock);
    return idle;
}

/* Aborts report nothing and closes go through the ring: poll for the end state, once no
 * create or unlink is in flight (a create that completes after an abort makes a file that
 * the cleanup then removes: without the gate's word the count could be read in between). */
static void wait_settled(unsigned files, unsigned fds)
{
    for (int i = 0;
         i < 2000 && (!gate_idle() || count_files_in(spooldir) != files || count_fds() != fds); i++)
        sleep_ms(5);
    assert_int_equal(count_files_in(spooldir), files);
    assert_int_equal(count_fds(), fds);
}

static char *pattern(size_t len, unsigned seed)
{
    char *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)(i * 131 + i / 7 + seed * 17);
    return p;
}

/* --- one message, driven from the test thread --- */

static struct {
    struct spool_msg *m;
    char qid[QID_LEN + 1];
    const char *data; /* what job_write appends */
    size_t len;
    int rc, rc2; /* of job_restart's two calls, or a read's refusal */
    uint64_t size;
    unsigned committed; /* the commit's done ran, under F.lock */
    int commit_err;
} M;

static void job_new(struct engine_worker *w)
{
    (void)w;
    M.m = spool_msg_new(sw, M.qid);
}

static void job_write(struct engine_worker *w)
{
    (void)w;
    M.rc = spool_msg_write(M.m, M.data, M.len);
    M.size = spool_msg_size(M.m);
}

static void write_data(const void *data, size_t len)
{
    M.data = data;
    M.len = len;
    run(job_write);
    assert_int_equal(M.rc, 0);
}

static void job_restart(struct engine_worker *w)
{
    (void)w;
    M.rc = spool_msg_restart(M.m);
    M.rc2 = spool_msg_restart(M.m);
    M.size = spool_msg_size(M.m);
}

static void job_abort(struct engine_worker *w)
{
    (void)w;
    spool_msg_abort(M.m);
    M.m = NULL;
}

static struct envelope_rcpt rcpt = {.addr = "alice@example.org", .state = ENV_RCPT_PENDING};
static const struct envelope env = {.sender = "sender@example.com",
                                    .created = 1700000000,
                                    .helo = "client.example.com",
                                    .client_addr = "192.0.2.7",
                                    .proto = "ESMTP",
                                    .daemon = "MTA",
                                    .rcpts = &rcpt,
                                    .n_rcpts = 1};

static void commit_done(void *arg, int err)
{
    (void)arg;
    pthread_mutex_lock(&F.lock);
    M.commit_err = err;
    M.committed++;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static void job_commit(struct engine_worker *w)
{
    (void)w;
    spool_msg_commit(M.m, &env, commit_done, NULL);
    M.m = NULL;
}

/* The committed message: its qf says the size, the data is exactly `data`, and nothing
 * else of it is in the spool. `one_file`: the data must be in the qf (no df was ever
 * needed), else in the df. */
static void assert_committed(const void *data, size_t len, bool one_file)
{
    size_t n;
    char err[128];
    struct envelope e;
    run(job_commit);
    WAIT_FOR(M.committed == 1);
    assert_int_equal(M.commit_err, 0);
    char *qf = slurp("qf", M.qid, &n);
    assert_non_null(qf);
    if (envelope_parse(qf, n, &e, err, sizeof(err)) < 0)
        fail_msg("qf: %s", err);
    assert_string_equal(e.qid, M.qid);
    assert_int_equal(e.size, len);
    assert_int_equal(e.data_inline, one_file);
    if (one_file) {
        assert_int_equal(n - e.data_offset, len);
        assert_memory_equal(qf + e.data_offset, data, len);
    } else {
        size_t dn;
        char *df = slurp("df", M.qid, &dn);
        assert_non_null(df);
        assert_int_equal(dn, len);
        assert_memory_equal(df, data, len);
        free(df);
    }
    envelope_free(&e);
    free(qf);
    assert_int_equal(count_files_in(spooldir), one_file ? 1 : 2);
}

/* --- reading back: a chain of reads on the worker --- */

static struct reader {
    uint64_t start, off, stop; /* reads [start, stop) or to the end of the data */
    const size_t *lens;        /* lengths asked, cycled */
    size_t n_lens;
    unsigned k;
    size_t asked; /* by the read in flight */
    char *out;    /* out[off - start]; with `copy`, the piece read */
    bool copy;    /* each piece is written into the message's (new) data */
    char piece[MAX_PIECE];
    ssize_t last;
    bool over, too_long;
    unsigned calls;
} R;

static void read_next(void);

static void read_cb(void *arg, ssize_t n)
{
    (void)arg;
    pthread_mutex_lock(&F.lock);
    R.calls++;
    R.last = n;
    R.too_long |= n > (ssize_t)R.asked;
    pthread_mutex_unlock(&F.lock);
    if (n > 0) {
        if (R.copy && spool_msg_write(M.m, R.piece, (size_t)n) < 0)
            n = -EIO;
        R.off += (uint64_t)n;
    }
    if (n > 0 && R.off < R.stop && !R.too_long) {
        read_next();
        return;
    }
    pthread_mutex_lock(&F.lock);
    R.over = true;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static void read_next(void)
{
    size_t len = R.lens[R.k++ % R.n_lens];
    if (len > R.stop - R.off)
        len = (size_t)(R.stop - R.off);
    char *buf = R.copy ? R.piece : R.out + (R.off - R.start);
    R.asked = len;
    M.rc = spool_msg_read(M.m, R.off, buf, len, read_cb, NULL);
    if (M.rc < 0) {
        pthread_mutex_lock(&F.lock);
        R.over = true;
        pthread_cond_broadcast(&F.cond);
        pthread_mutex_unlock(&F.lock);
    }
}

static void job_read(struct engine_worker *w)
{
    (void)w;
    read_next();
}

/* Reads [start, stop) in pieces of `lens` (cycled; stop UINT64_MAX: to the end, which
 * must then be reported as 0); checks the bytes against expect[start...]. */
static void read_back(uint64_t start, uint64_t stop, const size_t *lens, size_t n_lens,
                      const char *expect, size_t expect_len)
{
    size_t want = (stop == UINT64_MAX ? expect_len : stop) - start;
    memset(&R, 0, sizeof(R));
    R.start = R.off = start;
    R.stop = stop;
    R.lens = lens;
    R.n_lens = n_lens;
    R.out = malloc(want + MAX_PIECE);
    assert_non_null(R.out);
    memset(R.out, 0x5a, want + MAX_PIECE);
    run(job_read);
    WAIT_FOR(R.over);
    assert_int_equal(M.rc, 0);
    assert_false(R.too_long);
    assert_int_equal(R.off - start, want);
    if (stop == UINT64_MAX)
        assert_int_equal(R.last, 0);
    else
        assert_true(R.last > 0);
    assert_memory_equal(R.out, expect + start, want);
    assert_int_equal((unsigned char)R.out[want], 0x5a); /* nothing beyond what was asked */
    free(R.out);
    R.out = NULL;
}

/* Copies old data [start, stop) into the new data, in pieces of `lens`. */
static void copy_old(uint64_t start, uint64_t stop, const size_t *lens, size_t n_lens)
{
    memset(&R, 0, sizeof(R));
    R.start = R.off = start;
    R.stop = stop;
    R.lens = lens;
    R.n_lens = n_lens;
    R.copy = true;
    run(job_read);
    WAIT_FOR(R.over);
    assert_int_equal(M.rc, 0);
    assert_false(R.too_long);
    assert_true(R.last > 0);
    assert_int_equal(R.off, stop);
}

static unsigned reads_issued(void)
{
    pthread_mutex_lock(&F.lock);
    unsigned n = G.issued[HELD_READ];
    pthread_mutex_unlock(&F.lock);
    return n;
}

/* --- each test: a spool and an engine of its own --- */

static int setup(void **state)
{
    (void)state;
    char err[256];
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ringmail-rewrite-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(spooldir, sizeof(spooldir), "%s/spool", tmpdir);
    struct spool_settings ss = {.dir = spooldir, .write_chunk = CHUNK, .hash_depth = 1};
    if (!(sp = spool_open(&ss, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    memset(&G, 0, sizeof(G));
    memset(&M, 0, sizeof(M)); /* the test before left its message and reader */
    memset(&R, 0, sizeof(R));
    G.ops = spool_fs_uring;
    G.ops.write = gate_write;
    G.ops.read = gate_read;
    G.ops.create = gate_create;
    G.ops.unlink = gate_unlink;
    struct engine_settings es = {.workers = 1, .ring_entries = 256};
    struct engine_callbacks cb = {.worker_init = on_worker_init,
                                  .worker_fini = on_worker_fini,
                                  .on_message = engine_fixture_on_message,
                                  .on_accept = engine_fixture_no_accept,
                                  .on_recv = engine_fixture_no_recv,
                                  .on_closed = engine_fixture_no_closed};
    engine_fixture_start(&es, &cb, NULL, 0);
    hold(0); /* the worker is up: sw is set */
    return sw ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    if (F.e) {
        if (M.m) /* a test failed halfway */
            run(job_abort);
        release_all();
        engine_fixture_stop();
    }
    spool_close(sp);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- tests --- */

static const size_t odd_lens[] = {1, 4095, 13, 4097, 700, 9000, 3};

/* All in memory: no file, no read of one, exact bytes, 0 at the end. */
static void test_read_small(void **state)
{
    (void)state;
    static const char msg[] = "Subject: hi\r\n\r\nhello, world\r\n";
    size_t len = sizeof(msg) - 1;
    run(job_new);
    write_data(msg, 10);
    write_data(msg + 10, len - 10);
    assert_int_equal(M.size, len);
    read_back(0, UINT64_MAX, odd_lens, 7, msg, len);
    read_back(7, UINT64_MAX, (const size_t[]){2}, 1, msg, len);
    read_back(len - 1, UINT64_MAX, (const size_t[]){100}, 1, msg, len);
    read_back(len, UINT64_MAX, (const size_t[]){100}, 1, msg, len);
    assert_int_equal(reads_issued(), 0);
    assert_int_equal(count_files_in(spooldir), 0);
    assert_committed(msg, len, true);
}

/* Larger than write_chunk, every write done: the front comes from the df, the tail from
 * memory, and a read never crosses into the part still in memory. */
static void test_read_large(void **state)
{
    (void)state;
    size_t len = 5 * CHUNK + 1234;
    char *data = pattern(len, 1);
    run(job_new);
    for (size_t off = 0; off < len; off += 777)
        write_data(data + off, len - off < 777 ? len - off : 777);
    WAIT_FOR(G.done[HELD_WRITE] == 5);
    read_back(0, UINT64_MAX, odd_lens, 7, data, len);
    assert_true(reads_issued() > 0);
    read_back(CHUNK - 1, UINT64_MAX, (const size_t[]){2, 3 * CHUNK}, 2, data, len);
    read_back(5 * CHUNK - 3, 5 * CHUNK + 7, (const size_t[]){10}, 1, data, len);
    read_back(12345, 12346, (const size_t[]){1}, 1, data, len);
    assert_committed(data, len, false);
    free(data);
}

/* Writes held before the kernel: every read still sees them (from memory); once some
 * complete out of order, reads mix the df and memory; the data stays exact throughout. */
static void test_read_while_writing(void **state)
{
    (void)state;
    size_t len = 5 * CHUNK + 100;
    char *data = pattern(len, 2);
    hold(HOLD(HELD_WRITE));
    run(job_new);
    write_data(data, len);
    WAIT_FOR(G.held[HELD_WRITE] == 4); /* SPOOL_MAX_WRITES in flight, the fifth queued */
    read_back(0, UINT64_MAX, odd_lens, 7, data, len);
    assert_int_equal(reads_issued(), 0);

    release(HELD_WRITE, CHUNK);
    release(HELD_WRITE, 3 * CHUNK);
    WAIT_FOR(G.done[HELD_WRITE] == 2 && G.held[HELD_WRITE] == 3); /* the fifth chunk took a place */
    read_back(1, UINT64_MAX, odd_lens, 7, data, len);
    read_back(CHUNK + 5, 2 * CHUNK + 5, (const size_t[]){CHUNK}, 1, data, len);
    assert_true(reads_issued() > 0);

    /* A read of the df in flight while the writes before and after it complete. */
    hold(HOLD(HELD_WRITE) | HOLD(HELD_READ));
    unsigned before = reads_issued();
    memset(&R, 0, sizeof(R));
    R.start = R.off = 3 * CHUNK + 1;
    R.stop = 3 * CHUNK + 101;
    R.lens = (const size_t[]){100};
    R.n_lens = 1;
    R.out = malloc(100);
    assert_non_null(R.out);
    run(job_read);
    WAIT_FOR(G.issued[HELD_READ] == before + 1);
    release(HELD_WRITE, UINT64_MAX);
    WAIT_FOR(G.done[HELD_WRITE] == 5);
    release(HELD_READ, UINT64_MAX);
    WAIT_FOR(R.over);
    assert_int_equal(R.last, 100);
    assert_memory_equal(R.out, data + 3 * CHUNK + 1, 100);
    free(R.out);
    R.out = NULL;
    hold(0);
    read_back(0, UINT64_MAX, odd_lens, 7, data, len);
    assert_committed(data, len, false);
    free(data);
}

/* One message read back, then written again from the start: a new header, part of the old
 * body copied from the old data, maybe more; the commit stores exactly the new data. */
struct rewrite_case {
    size_t old_len;
    size_t old_hdr; /* the old body starts here */
    size_t new_hdr; /* bytes of new header */
    size_t copy;    /* old body bytes copied */
    size_t tail;    /* new bytes after them */
    /* HOLD() bits: held from the start until the old body is copied; with HELD_UNLINK,
     * new_hdr is at least a chunk, so the new df is wanted before the old one is gone */
    unsigned hold;
};

static unsigned gate_count(const unsigned *counter)
{
    pthread_mutex_lock(&F.lock);
    unsigned n = *counter;
    pthread_mutex_unlock(&F.lock);
    return n;
}

/* The new df is created only once the old one's unlink completed (never two df files,
 * never EEXIST), and the old one is unlinked only once it exists. */
static void check_df_order(unsigned held)
{
    if (held & HOLD(HELD_CREATE)) {
        sleep_ms(20); /* time for a create or an unlink issued too early to show */
        assert_int_equal(gate_count(&G.issued[HELD_CREATE]), 1);
        assert_int_equal(gate_count(&G.issued[HELD_UNLINK]), 0);
        release(HELD_CREATE, UINT64_MAX);
    }
    WAIT_FOR(G.issued[HELD_UNLINK] == 1);
    sleep_ms(20);
    assert_int_equal(gate_count(&G.issued[HELD_CREATE]), 1);
    release(HELD_UNLINK, UINT64_MAX);
    WAIT_FOR(G.issued[HELD_CREATE] == 2);
    release(HELD_CREATE, UINT64_MAX);
}

static void rewrite(const struct rewrite_case *c)
{
    char *old = pattern(c->old_len, 3);
    char *hdr = pattern(c->new_hdr, 4), *tail = pattern(c->tail, 5);
    size_t new_len = c->new_hdr + c->copy + c->tail;
    char *want = malloc(new_len + 1);
    assert_non_null(want);
    memcpy(want, hdr, c->new_hdr);
    memcpy(want + c->new_hdr, old + c->old_hdr, c->copy);
    memcpy(want + c->new_hdr + c->copy, tail, c->tail);
    unsigned fds = count_fds();

    hold(c->hold);
    run(job_new);
    write_data(old, c->old_len);
    read_back(0, UINT64_MAX, odd_lens, 7, old, c->old_len);
    run(job_restart);
    assert_int_equal(M.rc, 0);
    assert_int_equal(M.rc2, -EBUSY);
    assert_int_equal(M.size, 0);
    write_data(hdr, c->new_hdr);
    if (c->hold & HOLD(HELD_UNLINK))
        check_df_order(c->hold);
    copy_old(c->old_hdr, c->old_hdr + c->copy, odd_lens, 7);
    release_all();
    write_data(tail, c->tail);
    assert_int_equal(M.size, new_len);
    /* The old data is still there to read, whole, whatever was written since. */
    read_back(0, UINT64_MAX, odd_lens, 7, old, c->old_len);
    /* Never two df files: the old one is unlinked before the new one is created. */
    assert_true(count_files_in(spooldir) <= 1);
    /* One file only when neither the old nor the new data ever needed a df. */
    bool one_file = c->old_len < CHUNK && new_len < CHUNK;
    assert_committed(want, new_len, one_file);
    wait_settled(one_file ? 1 : 2, fds);
    free(old);
    free(hdr);
    free(tail);
    free(want);
}

static void test_restart_in_memory(void **state)
{
    (void)state;
    /* Both the old and the new data below write_chunk: no file before the commit. */
    rewrite(&(struct rewrite_case){.old_len = 3000, .old_hdr = 500, .new_hdr = 800, .copy = 2000});
}

static void test_restart_shorter(void **state)
{
    (void)state;
    rewrite(&(struct rewrite_case){
        .old_len = 6 * CHUNK + 321, .old_hdr = 1500, .new_hdr = 200, .copy = 100, .tail = 7});
}

static void test_restart_longer(void **state)
{
    (void)state;
    size_t old_len = 3 * CHUNK + 99;
    rewrite(&(struct rewrite_case){.old_len = old_len,
                                   .old_hdr = 1000,
                                   .new_hdr = 5000,
                                   .copy = old_len - 1000,
                                   .tail = 2 * CHUNK + 1});
}

/* The old data's writes still in flight (and one queued) when the restart comes: its df
 * is unlinked while they run, and the new df waits for that. */
static void test_restart_writes_in_flight(void **state)
{
    (void)state;
    size_t old_len = 5 * CHUNK + 17;
    rewrite(&(struct rewrite_case){.old_len = old_len,
                                   .old_hdr = 10,
                                   .new_hdr = CHUNK + 3,
                                   .copy = old_len - 10,
                                   .tail = 5,
                                   .hold = HOLD(HELD_WRITE) | HOLD(HELD_UNLINK)});
}

/* The old df's create still in flight at the restart: it is unlinked once it exists, its
 * chunks are written (and read) all the same, then the new df is created. */
static void test_restart_create_in_flight(void **state)
{
    (void)state;
    size_t old_len = 2 * CHUNK + 5;
    rewrite(
        &(struct rewrite_case){.old_len = old_len,
                               .old_hdr = 3,
                               .new_hdr = 2 * CHUNK,
                               .copy = old_len - 3,
                               .hold = HOLD(HELD_WRITE) | HOLD(HELD_CREATE) | HOLD(HELD_UNLINK)});
}

/* An abort after a restart removes both data's files and memory, and closes the old df's
 * descriptor (ASan in CI sees any leak). */
static void test_restart_abort(void **state)
{
    (void)state;
    unsigned fds = count_fds();
    char *old = pattern(4 * CHUNK, 6), *fresh = pattern(3 * CHUNK, 7);

    run(job_new);
    write_data(old, 4 * CHUNK);
    run(job_restart);
    assert_int_equal(M.rc, 0);
    write_data(fresh, 3 * CHUNK);
    copy_old(0, 100, (const size_t[]){64}, 1);
    run(job_abort);
    wait_settled(0, fds);

    /* All in memory. */
    run(job_new);
    write_data(old, 100);
    run(job_restart);
    assert_int_equal(M.rc, 0);
    write_data(fresh, 50);
    run(job_abort);
    wait_settled(0, fds);
    free(old);
    free(fresh);
}

/* An abort while a read of the df is in flight: no `done`, the buffer untouched, the files
 * gone. */
static void test_abort_during_read(void **state)
{
    (void)state;
    unsigned fds = count_fds();
    char *data = pattern(3 * CHUNK, 8);
    run(job_new);
    write_data(data, 3 * CHUNK);
    WAIT_FOR(G.done[HELD_WRITE] == 3);
    hold(HOLD(HELD_READ));
    memset(&R, 0, sizeof(R));
    R.stop = 1000;
    R.lens = (const size_t[]){1000};
    R.n_lens = 1;
    R.out = malloc(1000);
    assert_non_null(R.out);
    memset(R.out, 0x5a, 1000);
    run(job_read);
    WAIT_FOR(G.issued[HELD_READ] == 1);
    run(job_abort);
    release(HELD_READ, UINT64_MAX);
    WAIT_FOR(G.done[HELD_READ] == 1);
    wait_settled(0, fds);
    assert_int_equal(R.calls, 0);
    for (size_t i = 0; i < 1000; i++)
        assert_int_equal((unsigned char)R.out[i], 0x5a);
    free(R.out);
    R.out = NULL;
    free(data);
}

/* The refusals: a second restart, a second read while one is in flight, an empty read. */
static int misuse_rc[3];

static void job_misuse(struct engine_worker *w)
{
    (void)w;
    static const size_t lens[] = {16};
    static char out[64];
    memset(&R, 0, sizeof(R));
    R.stop = UINT64_MAX;
    R.lens = lens;
    R.n_lens = 1;
    R.out = out;
    int restarted = spool_msg_restart(M.m);
    M.rc2 = spool_msg_restart(M.m);
    read_next();
    misuse_rc[0] = M.rc;
    misuse_rc[1] = spool_msg_read(M.m, 0, out, 16, read_cb, NULL);
    misuse_rc[2] = spool_msg_read(M.m, 0, out, 0, read_cb, NULL);
    M.rc = restarted;
}

static void test_misuse(void **state)
{
    (void)state;
    unsigned fds = count_fds();
    run(job_new);
    write_data("abc", 3);
    run(job_misuse);
    assert_int_equal(M.rc, 0);
    assert_int_equal(M.rc2, -EBUSY);
    assert_int_equal(misuse_rc[0], 0);
    assert_int_equal(misuse_rc[1], -EBUSY);
    assert_int_equal(misuse_rc[2], -EINVAL);
    WAIT_FOR(R.over);
    /* The old data, then its end: the new data is still empty. */
    assert_int_equal(R.off, 3);
    assert_int_equal(R.last, 0);
    assert_memory_equal(R.out, "abc", 3);
    R.out = NULL;
    write_data("de", 2);
    assert_int_equal(M.size, 2);
    run(job_abort);
    wait_settled(0, fds);
}

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_in_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_shorter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_longer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_writes_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_create_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_during_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
