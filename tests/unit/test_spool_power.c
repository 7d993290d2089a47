/* Power loss at every point of a commit. The spool runs over a model file system (its
 * queue/spool_fs.h seam) that keeps two states: what a running system sees, and what is
 * on stable storage — file data only as it was when its last completed fsync was issued,
 * a directory's entries only as they were when the last completed fsync of that
 * directory was issued (each subdirectory of the spool is fsynced on its own).
 * Completions are delivered one at a time; after each one the power is cut, the durable state is
 * written into a real directory, and the real recovery runs on it. Then:
 *   - a message whose 250 (done(arg, 0)) came before the cut is there, complete;
 *   - any other message is there complete or not at all: never a qf without its df, never
 *     a df shorter than its envelope says, never a damaged envelope. The commit renames
 *     tf→qf before the qf's fsync, so a cut can leave a qf that is empty: recovery must
 *     remove it (counted as empty, never as damaged), and every run of cuts must meet such
 *     a state at least once.
 * A journalling file system may also have made some of the directory operations since the
 * last directory fsync durable, in order: every prefix of them is tried too.
 * Completions are delivered oldest first, newest first and in seeded random orders (which
 * let a rename complete while a directory fsync is in flight), with whole and short
 * writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool.h"
#include "queue/spool_fs.h"
#include "util/log.h"

#define MAX_INODES  32
#define MAX_ENTRIES 32
#define MAX_FDS     32
#define MAX_PENDING 128
#define MAX_DIROPS  64
#define MAX_TRACE   4096
#define NAME_MAX_   32
#define FD_BASE     1000
#define FD_DIR      (-2)

/* --- the model file system --- */

/* A write since the file's last fsync was issued: the kernel may write it back before
 * the fsync, on its own, in any order with the others (spool_update's model). */
struct writeback {
    uint64_t off;
    unsigned len;
    char data[48];
};
#define MAX_WB 8

struct inode {
    char *vol, *dur; /* contents as seen / as on stable storage */
    size_t vol_len, dur_len;
    struct writeback wb[MAX_WB]; /* small writes not yet covered by an fsync */
    int n_wb;
};

struct dentry {
    char name[NAME_MAX_];
    int ino;
};

struct dir {
    struct dentry e[MAX_ENTRIES];
    int n;
};

enum dirop_kind { DIROP_CREATE, DIROP_RENAME, DIROP_UNLINK };

struct dirop {
    enum dirop_kind kind;
    char a[NAME_MAX_], b[NAME_MAX_]; /* paths relative to the spool */
    char dir[8];                     /* the directory it changes: "" (top), "3", "3/a" */
    unsigned seq;
    int ino;
};

enum op_kind {
    OP_CREATE,
    OP_OPEN,
    OP_WRITE,
    OP_FSYNC,
    OP_RENAME,
    OP_UNLINK,
    OP_FSYNC_DIR,
    OP_LATER
};

struct pending {
    enum op_kind kind;
    struct engine_op *op;
    int fd;
    char a[NAME_MAX_], b[NAME_MAX_];
    enum spool_fs_open how;
    const char *data;
    unsigned len;
    uint64_t off;
    /* An fsync covers what was there when it was issued, not what came while it ran:
     * the file's contents, or the directory's operations logged so far. */
    char *snap;
    size_t snap_len;
    unsigned snap_seq;
    int snap_wb; /* the writes it covers */
    char dir[8];
};

static struct model {
    struct inode ino[MAX_INODES];
    int n_ino;
    struct dir vol, dur;
    struct dirop log[MAX_DIROPS]; /* directory operations not yet durable, in order */
    int n_log;
    unsigned next_seq;
    int fd_ino[MAX_FDS]; /* FD_DIR: a directory, named in fd_dir */
    char fd_dir[MAX_FDS][8];
    struct pending q[MAX_PENDING];
    int n_q;
    enum { ORDER_FIFO, ORDER_LIFO, ORDER_RANDOM } order;
    unsigned seed; /* ORDER_RANDOM */
    bool short_writes;
    char trace[MAX_TRACE];
    size_t trace_len;
} fs;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (fs.trace_len < sizeof(fs.trace)) {
        int n = vsnprintf(fs.trace + fs.trace_len, sizeof(fs.trace) - fs.trace_len, fmt, ap);
        fs.trace_len += n > 0 ? (size_t)n : 0;
    }
    va_end(ap);
}

static void model_reset(int order, unsigned seed, bool short_writes)
{
    for (int i = 0; i < fs.n_ino; i++) {
        free(fs.ino[i].vol);
        free(fs.ino[i].dur);
    }
    for (int i = 0; i < fs.n_q; i++)
        free(fs.q[i].snap);
    memset(&fs, 0, sizeof(fs));
    for (int i = 0; i < MAX_FDS; i++)
        fs.fd_ino[i] = -1;
    fs.order = order;
    fs.seed = seed;
    fs.short_writes = short_writes;
}

static int dir_find(const struct dir *d, const char *name)
{
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->e[i].name, name) == 0)
            return i;
    return -1;
}

static void dir_remove(struct dir *d, const char *name)
{
    int i = dir_find(d, name);
    if (i >= 0)
        d->e[i] = d->e[--d->n];
}

static void dir_set(struct dir *d, const char *name, int ino)
{
    int i = dir_find(d, name);
    if (i < 0) {
        assert_true(d->n < MAX_ENTRIES);
        i = d->n++;
        snprintf(d->e[i].name, NAME_MAX_, "%s", name);
    }
    d->e[i].ino = ino;
}

static void dirop_apply(struct dir *d, const struct dirop *op)
{
    int i;
    switch (op->kind) {
    case DIROP_CREATE:
        dir_set(d, op->a, op->ino);
        break;
    case DIROP_RENAME:
        if ((i = dir_find(d, op->a)) >= 0) {
            int ino = d->e[i].ino;
            dir_remove(d, op->a);
            dir_set(d, op->b, ino);
        }
        break;
    case DIROP_UNLINK:
        dir_remove(d, op->a);
        break;
    }
}

/* The directory a path is in: what its slash-less prefix names. */
static void dir_of(char out[8], const char *path)
{
    const char *slash = strrchr(path, '/');
    snprintf(out, 8, "%.*s", slash ? (int)(slash - path) : 0, path);
}

static void dirop_log(enum dirop_kind kind, const char *a, const char *b, int ino)
{
    assert_true(fs.n_log < MAX_DIROPS);
    struct dirop *op = &fs.log[fs.n_log++];
    op->kind = kind;
    snprintf(op->a, NAME_MAX_, "%s", a);
    snprintf(op->b, NAME_MAX_, "%s", b ? b : "");
    dir_of(op->dir, a);
    op->seq = fs.next_seq++;
    op->ino = ino;
    dirop_apply(&fs.vol, op);
}

static int fd_new(int ino)
{
    int fd = 0;
    while (fd < MAX_FDS && fs.fd_ino[fd] != -1)
        fd++;
    if (fd == MAX_FDS)
        fail_msg("the model ran out of descriptors");
    else
        fs.fd_ino[fd] = ino;
    return FD_BASE + fd;
}

static struct inode *fd_inode(int fd)
{
    assert_true(fd >= FD_BASE && fd < FD_BASE + MAX_FDS && fs.fd_ino[fd - FD_BASE] >= 0);
    return &fs.ino[fs.fd_ino[fd - FD_BASE]];
}

/* The directory an fsync_dir is for: a subdirectory opened through the model, or the
 * spool's own (real) descriptor, which is the top. */
static const char *fd_dirname(int fd)
{
    if (fd >= FD_BASE && fd < FD_BASE + MAX_FDS) {
        assert_int_equal(fs.fd_ino[fd - FD_BASE], FD_DIR);
        return fs.fd_dir[fd - FD_BASE];
    }
    return "";
}

/* Performs one pending operation (at the moment it completes) and returns its result. */
static int model_do(const struct pending *p)
{
    struct inode *in;
    switch (p->kind) {
    case OP_CREATE: {
        if (dir_find(&fs.vol, p->a) >= 0)
            return -EEXIST;
        assert_true(fs.n_ino < MAX_INODES);
        int ino = fs.n_ino++, fd = fd_new(ino);
        dirop_log(DIROP_CREATE, p->a, NULL, ino);
        trace("create %s = %d\n", p->a, fd);
        return fd;
    }
    case OP_OPEN: {
        int fd, i = dir_find(&fs.vol, p->a);
        if (p->how == SPOOL_FS_DIR) {
            fd = fd_new(FD_DIR);
            snprintf(fs.fd_dir[fd - FD_BASE], 8, "%.7s", p->a);
        } else if (i < 0) {
            return -ENOENT;
        } else {
            fd = fd_new(fs.vol.e[i].ino);
        }
        trace("open %s = %d\n", p->a, fd);
        return fd;
    }
    case OP_WRITE: {
        unsigned len = fs.short_writes && p->len > 24 ? 24 : p->len;
        in = fd_inode(p->fd);
        if (p->off + len > in->vol_len) {
            in->vol = realloc(in->vol, p->off + len);
            assert_non_null(in->vol);
            memset(in->vol + in->vol_len, 0, p->off + len - in->vol_len);
            in->vol_len = p->off + len;
        }
        memcpy(in->vol + p->off, p->data, len);
        if (len <= sizeof(in->wb[0].data) && in->n_wb < MAX_WB) {
            struct writeback *w = &in->wb[in->n_wb++];
            w->off = p->off;
            w->len = len;
            memcpy(w->data, p->data, len);
        }
        trace("write %d @%llu +%u\n", p->fd, (unsigned long long)p->off, len);
        return (int)len;
    }
    case OP_FSYNC:
        in = fd_inode(p->fd);
        free(in->dur);
        in->dur = p->snap;
        in->dur_len = p->snap_len;
        memmove(in->wb, in->wb + p->snap_wb, (size_t)(in->n_wb - p->snap_wb) * sizeof(in->wb[0]));
        in->n_wb -= p->snap_wb;
        trace("fsync %d\n", p->fd);
        return 0;
    case OP_RENAME:
        if (dir_find(&fs.vol, p->a) < 0)
            return -ENOENT;
        dirop_log(DIROP_RENAME, p->a, p->b, -1);
        trace("rename %s %s\n", p->a, p->b);
        return 0;
    case OP_UNLINK:
        if (dir_find(&fs.vol, p->a) < 0)
            return -ENOENT;
        dirop_log(DIROP_UNLINK, p->a, NULL, -1);
        trace("unlink %s\n", p->a);
        return 0;
    case OP_FSYNC_DIR: {
        /* This directory's operations logged before the fsync was issued become
         * durable; the other directories' stay in the log. */
        int kept = 0, n = 0;
        for (int i = 0; i < fs.n_log; i++) {
            if (fs.log[i].seq < p->snap_seq && strcmp(fs.log[i].dir, p->dir) == 0) {
                dirop_apply(&fs.dur, &fs.log[i]);
                n++;
            } else {
                fs.log[kept++] = fs.log[i];
            }
        }
        fs.n_log = kept;
        trace("fsync directory '%s' (%d operations)\n", p->dir, n);
        return 0;
    }
    case OP_LATER:
        return 0;
    }
    return -EINVAL;
}

static struct pending *submit(enum op_kind kind, struct engine_op *op)
{
    assert_true(fs.n_q < MAX_PENDING);
    struct pending *p = &fs.q[fs.n_q++];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->op = op;
    return p;
}

/* The backend: every operation waits in fs.q until pump() completes it. */
static void fake_create(void *ctx, struct engine_op *op, int dirfd, const char *name)
{
    (void)ctx, (void)dirfd;
    snprintf(submit(OP_CREATE, op)->a, NAME_MAX_, "%s", name);
}

static void fake_open(void *ctx, struct engine_op *op, int dirfd, const char *name,
                      enum spool_fs_open how)
{
    (void)ctx, (void)dirfd;
    struct pending *p = submit(OP_OPEN, op);
    snprintf(p->a, NAME_MAX_, "%s", name);
    p->how = how;
}

static void fake_write(void *ctx, struct engine_op *op, int fd, const void *data, unsigned len,
                       uint64_t off)
{
    (void)ctx;
    struct pending *p = submit(OP_WRITE, op);
    p->fd = fd;
    p->data = data;
    p->len = len;
    p->off = off;
}

static void fake_fsync(void *ctx, struct engine_op *op, int fd)
{
    (void)ctx;
    const struct inode *in = fd_inode(fd);
    struct pending *p = submit(OP_FSYNC, op);
    p->fd = fd;
    p->snap_wb = in->n_wb;
    p->snap_len = in->vol_len;
    p->snap = in->vol_len ? malloc(in->vol_len) : NULL;
    if (in->vol_len)
        memcpy(p->snap, in->vol, in->vol_len);
}

static void fake_close(void *ctx, int fd)
{
    (void)ctx;
    if (fs.fd_ino[fd - FD_BASE] != FD_DIR)
        fd_inode(fd);
    fs.fd_ino[fd - FD_BASE] = -1;
    trace("close %d\n", fd);
}

static void fake_rename(void *ctx, struct engine_op *op, int dirfd, const char *from,
                        const char *to)
{
    (void)ctx, (void)dirfd;
    struct pending *p = submit(OP_RENAME, op);
    snprintf(p->a, NAME_MAX_, "%s", from);
    snprintf(p->b, NAME_MAX_, "%s", to);
}

static void fake_unlink(void *ctx, struct engine_op *op, int dirfd, const char *name)
{
    (void)ctx, (void)dirfd;
    snprintf(submit(OP_UNLINK, op)->a, NAME_MAX_, "%s", name);
}

static void fake_fsync_dir(void *ctx, struct engine_op *op, int dirfd)
{
    (void)ctx;
    struct pending *p = submit(OP_FSYNC_DIR, op);
    p->snap_seq = fs.next_seq;
    snprintf(p->dir, sizeof(p->dir), "%s", fd_dirname(dirfd));
}

static void fake_later(void *ctx, struct engine_op *op)
{
    (void)ctx;
    submit(OP_LATER, op);
}

static const struct spool_fs_ops fake_fs = {
    .create = fake_create,
    .open = fake_open,
    .write = fake_write,
    .fsync = fake_fsync,
    .close = fake_close,
    .rename = fake_rename,
    .unlink = fake_unlink,
    .fsync_dir = fake_fsync_dir,
    .later = fake_later,
};

/* Completes one operation; false when none is pending. */
static bool pump(void)
{
    if (!fs.n_q)
        return false;
    int i = fs.order == ORDER_FIFO   ? 0
            : fs.order == ORDER_LIFO ? fs.n_q - 1
                                     : rand_r(&fs.seed) % fs.n_q;
    struct pending p = fs.q[i];
    memmove(&fs.q[i], &fs.q[i + 1], (size_t)(fs.n_q - i - 1) * sizeof(fs.q[0]));
    fs.n_q--;
    int res = model_do(&p);
    p.op->complete(p.op, res);
    return true;
}

/* --- the scenario --- */

#define N_MSGS 5
enum { MSG_EMPTY, MSG_SMALL, MSG_LARGE, MSG_OPEN, MSG_ABORTED };
/* The large message is still arriving for a while: its commit comes after this many
 * completions, so its first chunks' create and writes run before it. */
#define LARGE_COMMIT_AT 3

static char tmpdir[64];
static struct spool *sp;
static unsigned depth; /* the spool's hash_depth in this test */

struct msg {
    char qid[QID_LEN + 1];
    struct spool_msg *m;
    char data[320];
    size_t len;
    bool committed, done, acked;
};

static struct msg msgs[N_MSGS];

static struct envelope_rcpt rcpt = {.addr = "alice@example.org", .state = ENV_RCPT_PENDING};
static const struct envelope env = {
    .sender = "sender@example.com", .created = 1700000000, .rcpts = &rcpt, .n_rcpts = 1};

static void msg_done(void *arg, int err)
{
    struct msg *x = arg;
    x->done = true;
    x->acked = err == 0;
}

static void msg_start(struct spool_worker *sw, struct msg *x, size_t len)
{
    x->m = spool_msg_new(sw, x->qid);
    assert_non_null(x->m);
    x->len = len;
    for (size_t i = 0; i < len; i++)
        x->data[i] = (char)('a' + (i * 7 + (size_t)(x - msgs)) % 26);
    /* uneven pieces, as DATA arrives */
    for (size_t off = 0, piece = 1; off < len; off += piece, piece = piece * 3 % 37 + 1) {
        if (piece > len - off)
            piece = len - off;
        assert_int_equal(spool_msg_write(x->m, x->data + off, piece), 0);
    }
}

static void msg_commit(struct msg *x)
{
    x->committed = true;
    spool_msg_commit(x->m, &env, msg_done, x);
}

static struct spool_worker *scenario_start(void)
{
    struct spool_worker *sw = spool_worker_new_fs(sp, &fake_fs, NULL, 1);
    assert_non_null(sw);
    memset(msgs, 0, sizeof(msgs));
    msg_start(sw, &msgs[MSG_EMPTY], 0);
    msg_start(sw, &msgs[MSG_SMALL], 40);  /* below write_chunk: no file until the commit */
    msg_start(sw, &msgs[MSG_LARGE], 300); /* write_chunk 64: four chunks before commit */
    msg_start(sw, &msgs[MSG_OPEN], 200);  /* never committed: the client is still sending */
    msg_start(sw, &msgs[MSG_ABORTED], 150);
    msg_commit(&msgs[MSG_EMPTY]);
    msg_commit(&msgs[MSG_SMALL]);
    return sw;
}

static void scenario_step(int step)
{
    if (step == LARGE_COMMIT_AT)
        msg_commit(&msgs[MSG_LARGE]);
    if (step == LARGE_COMMIT_AT + 1)
        spool_msg_abort(msgs[MSG_ABORTED].m);
}

/* Runs the rest (what happens after the cut does not matter) and frees everything. */
static void scenario_finish(struct spool_worker *sw, int step)
{
    for (; step <= LARGE_COMMIT_AT + 1; step++)
        scenario_step(step);
    while (pump())
        ;
    spool_msg_abort(msgs[MSG_OPEN].m);
    while (pump())
        ;
    spool_worker_free(sw);
}

/* --- the check after a cut --- */

/* `name` may be in subdirectories of `dir`: they are made. */
static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
        *p = '/';
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    assert_int_equal(fstat(fileno(f), &st), 0);
    char *data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    *len = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    return data;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_dir(const char *dir)
{
    assert_int_equal(nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

struct found {
    bool seen[N_MSGS];
    const char *dir;
    struct spool *sp;
    bool bad;
};

static int found_fn(void *arg, const struct envelope *e)
{
    struct found *fo = arg;
    for (int i = 0; i < N_MSGS; i++) {
        if (strcmp(e->qid, msgs[i].qid) != 0)
            continue;
        char name[32];
        size_t len = 0, off = e->data_inline ? e->data_offset : 0;
        /* the data follows the envelope in the qf (one file), or is the df */
        assert_true(
            spool_msg_path(fo->sp, e->data_inline ? "qf" : "df", e->qid, name, sizeof(name)) > 0);
        char *df = read_file(fo->dir, name, &len);
        fo->seen[i] = true;
        if (!msgs[i].committed || !df || len - off != msgs[i].len ||
            memcmp(df + off, msgs[i].data, len - off) != 0 || e->size != len - off) {
            print_error("message %d (%s) recovered but not as committed\n", i, e->qid);
            fo->bad = true;
        }
        free(df);
        return 0;
    }
    print_error("recovered a message that was never sent: %s\n", e->qid);
    fo->bad = true;
    return 0;
}

/* Most cuts leave the same durable state with the same messages acknowledged as an
 * earlier one (a write that was not fsynced changes nothing durable): each distinct one
 * is checked once. */
static uint64_t checked[8192];
static unsigned n_checked;
/* Empty qf files recovery removed, over the cuts of one run. */
static unsigned n_empty_qf;

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)data)[i]) * 0x100000001b3ull;
    return h;
}

/* A file's name with its queue id replaced by the message's index: the same state in two
 * runs (whose ids differ) hashes the same. */
static int dentry_key(const struct dentry *e)
{
    const char *slash = strrchr(e->name, '/'), *base = slash ? slash + 1 : e->name;
    for (int i = 0; i < N_MSGS; i++)
        if (strcmp(base + 2, msgs[i].qid) == 0)
            return base[0] * 256 + base[1] * 16 + i;
    fail_msg("unexpected file %s", e->name);
    return -1;
}

static int dentry_cmp(const void *a, const void *b)
{
    return dentry_key(a) - dentry_key(b);
}

static bool seen_before(struct dir *d)
{
    uint64_t h = 0xcbf29ce484222325ull;
    qsort(d->e, (size_t)d->n, sizeof(d->e[0]), dentry_cmp);
    for (int i = 0; i < d->n; i++) {
        const struct inode *in = &fs.ino[d->e[i].ino];
        int key = dentry_key(&d->e[i]);
        h = fnv(h, &key, sizeof(key));
        h = fnv(h, &in->dur_len, sizeof(in->dur_len));
        h = fnv(h, in->dur, in->dur_len);
    }
    for (int i = 0; i < N_MSGS; i++) {
        h = fnv(h, &msgs[i].committed, sizeof(bool));
        h = fnv(h, &msgs[i].acked, sizeof(bool));
    }
    for (unsigned i = 0; i < n_checked; i++)
        if (checked[i] == h)
            return true;
    assert_true(n_checked < sizeof(checked) / sizeof(checked[0]));
    checked[n_checked++] = h;
    return false;
}

/* The durable state with the first `prefix` directory operations not yet durable, as a
 * real spool directory; recovery and a scan run on it. */
static void check_cut(int cut, int prefix)
{
    char dir[128], err[256];
    struct dir d = fs.dur;
    struct spool_recovery rec;
    struct spool_settings ss = {0};

    for (int i = 0; i < prefix; i++)
        dirop_apply(&d, &fs.log[i]);
    if (seen_before(&d))
        return;
    snprintf(dir, sizeof(dir), "%s/cut", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    for (int i = 0; i < d.n; i++) {
        const struct inode *in = &fs.ino[d.e[i].ino];
        write_file(dir, d.e[i].name, in->dur, in->dur_len);
    }
    ss.dir = dir;
    ss.hash_depth = depth;
    struct spool *cut_sp = spool_open(&ss, err, sizeof(err));
    assert_non_null(cut_sp);
    assert_int_equal(spool_recover(cut_sp, NULL, NULL, &rec, err, sizeof(err)), 0);
    n_empty_qf += rec.empty;
    struct found fo = {.dir = dir, .sp = cut_sp};
    assert_int_equal(spool_scan(cut_sp, found_fn, &fo), 0);
    spool_close(cut_sp);

    unsigned seen = 0;
    for (int i = 0; i < N_MSGS; i++)
        seen += fo.seen[i];
    bool bad = fo.bad || rec.damaged != 0 || rec.messages != seen;
    for (int i = 0; i < N_MSGS; i++) {
        if (msgs[i].acked && !fo.seen[i]) {
            print_error("message %d (%s) got its 250 and is lost\n", i, msgs[i].qid);
            bad = true;
        }
    }
    if (bad) {
        print_error("power cut after %d completions (order %d seed %u, short writes %d), %d of %d "
                    "directory operations since the last directory fsync kept; %u damaged\n"
                    "trace:\n%s",
                    cut, fs.order, fs.seed, fs.short_writes, prefix, fs.n_log, rec.damaged,
                    fs.trace);
        fail();
    }
    remove_dir(dir);
}

/* --- tests --- */

static int setup(void **state)
{
    char dir[128], err[256];
    struct spool_settings ss = {.write_chunk = 64};
    depth = *state ? *(const unsigned *)*state : SPOOL_HASH_DEPTH_DEFAULT;
    ss.hash_depth = depth;
    /* Thousands of small directories: on tmpfs where there is one. */
    snprintf(tmpdir, sizeof(tmpdir), "/dev/shm/ringmail-power-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ringmail-power-XXXXXX");
        if (!mkdtemp(tmpdir))
            return -1;
    }
    snprintf(dir, sizeof(dir), "%s/spool", tmpdir);
    ss.dir = dir;
    sp = spool_open(&ss, err, sizeof(err));
    if (!sp)
        fprintf(stderr, "%s\n", err);
    return sp ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    spool_close(sp);
    model_reset(ORDER_FIFO, 0, false);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Without a cut everything commits: the number of completions to try cuts after. */
static int full_run(int order, unsigned seed, bool short_writes)
{
    model_reset(order, seed, short_writes);
    struct spool_worker *sw = scenario_start();
    int steps = 0;
    for (;; steps++) {
        scenario_step(steps);
        if (!pump())
            break;
    }
    for (int i = 0; i < N_MSGS; i++) {
        if (!msgs[i].committed)
            continue;
        if (!msgs[i].acked)
            fail_msg("message %d did not commit without a power cut\n%s", i, fs.trace);
    }
    scenario_finish(sw, steps);
    return steps;
}

static void power_cuts(int order, unsigned seed, bool short_writes)
{
    int steps = full_run(order, seed, short_writes), cuts = 0;
    n_checked = 0;
    n_empty_qf = 0;
    assert_true(steps > 20);
    for (int cut = 0; cut <= steps; cut++) {
        model_reset(order, seed, short_writes);
        struct spool_worker *sw = scenario_start();
        int step = 0;
        for (; step < cut; step++) {
            scenario_step(step);
            if (!pump())
                break;
        }
        for (int prefix = 0; prefix <= fs.n_log; prefix++, cuts++)
            check_cut(cut, prefix);
        scenario_finish(sw, step);
    }
    print_message("depth %u order %d seed %u: %d completions, %d power cuts, %u distinct states "
                  "checked, %u empty qf removed\n",
                  depth, order, seed, steps, cuts, n_checked, n_empty_qf);
    assert_true(n_empty_qf > 0);
}

static void test_cut_oldest_first(void **state)
{
    (void)state;
    power_cuts(ORDER_FIFO, 0, false);
}

static void test_cut_newest_first(void **state)
{
    (void)state;
    power_cuts(ORDER_LIFO, 0, false);
}

static void test_cut_short_writes(void **state)
{
    (void)state;
    power_cuts(ORDER_FIFO, 0, true);
    power_cuts(ORDER_LIFO, 0, true);
}

static void test_cut_random_orders(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 12; seed++)
        power_cuts(ORDER_RANDOM, seed, seed % 3 == 0);
}

/* --- power loss while a message is updated in place, then removed --- */

#define UPD_RCPTS 3

static struct envelope_rcpt upd_rcpts[UPD_RCPTS] = {
    {.addr = "a@example.org", .state = ENV_RCPT_PENDING},
    {.addr = "b@example.org", .state = ENV_RCPT_PENDING},
    {.addr = "c@example.org", .state = ENV_RCPT_PENDING},
};
static const struct envelope upd_env = {.sender = "s@example.com",
                                        .created = 1700000000,
                                        .next_attempt = 1700000000,
                                        .rcpts = upd_rcpts,
                                        .n_rcpts = UPD_RCPTS};
/* The update: a delivered, c failed, the attempt counted, the next one later. */
static const char upd_new_state[UPD_RCPTS] = {'D', 'P', 'F'};
#define UPD_ATTEMPTS 1u
#define UPD_NEXT     1799999999 /* every digit differs from the old value's */

struct upd_check {
    bool acked;     /* the update's callback came before the cut */
    bool removing;  /* spool_remove was called */
    bool gone;      /* spool_delete's callback came before the cut */
    unsigned found; /* messages recovery handed over */
    bool all_new;   /* the one found carries the whole update */
    bool bad;
    char why[160];
};

static void upd_done(void *arg, int err)
{
    *(int *)arg = err == 0 ? 1 : -1;
}

static int upd_found(void *arg, const struct envelope *e)
{
    struct upd_check *c = arg;
    bool all_new = e->attempts == UPD_ATTEMPTS && e->next_attempt == UPD_NEXT;
    c->found++;
    if (e->attempts != 0 && e->attempts != UPD_ATTEMPTS)
        snprintf(c->why, sizeof(c->why), "attempts %u is neither old nor new", e->attempts);
    if (e->next_attempt != upd_env.next_attempt && e->next_attempt != UPD_NEXT)
        snprintf(c->why, sizeof(c->why), "next attempt %lld is neither old nor new",
                 (long long)e->next_attempt);
    for (size_t i = 0; i < e->n_rcpts; i++) {
        char st = (char)e->rcpts[i].state;
        all_new &= st == upd_new_state[i];
        if (st != 'P' && st != upd_new_state[i])
            snprintf(c->why, sizeof(c->why), "recipient %zu state %c is neither old nor new", i,
                     st);
    }
    c->all_new = all_new;
    c->bad |= c->why[0] != '\0';
    return 0;
}

/* The durable directory `d`, with the qf's durable contents plus the writes in `mask` of
 * its pending writebacks, as a real spool; recovery runs on it. */
static void upd_check_state(const struct dir *d, int qf_ino, unsigned mask, struct upd_check *c)
{
    char dir[128], err[256];
    struct spool_settings ss = {.hash_depth = depth};
    struct spool_recovery rec;

    snprintf(dir, sizeof(dir), "%s/cut", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    for (int i = 0; i < d->n; i++) {
        const struct inode *in = &fs.ino[d->e[i].ino];
        char *img = in->dur_len ? malloc(in->dur_len) : NULL;
        if (in->dur_len)
            memcpy(img, in->dur, in->dur_len);
        for (int w = 0; d->e[i].ino == qf_ino && w < in->n_wb; w++) {
            if (!(mask & (1u << w)))
                continue;
            assert_true(in->wb[w].off + in->wb[w].len <= in->dur_len);
            memcpy(img + in->wb[w].off, in->wb[w].data, in->wb[w].len);
        }
        write_file(dir, d->e[i].name, img, in->dur_len);
        free(img);
    }
    ss.dir = dir;
    struct spool *cut_sp = spool_open(&ss, err, sizeof(err));
    assert_non_null(cut_sp);
    c->found = 0;
    assert_int_equal(spool_recover(cut_sp, upd_found, c, &rec, err, sizeof(err)), 0);
    spool_close(cut_sp);
    remove_dir(dir);
    if (rec.damaged)
        snprintf(c->why, sizeof(c->why), "a damaged queue file");
    else if (!c->removing && c->found != 1)
        snprintf(c->why, sizeof(c->why), "the message is lost");
    else if (c->gone && c->found)
        snprintf(c->why, sizeof(c->why), "the removal was acknowledged and the message is back");
    else if (c->acked && c->found && !c->all_new)
        snprintf(c->why, sizeof(c->why), "the update was acknowledged and is not all there");
    c->bad |= c->why[0] != '\0';
}

/* Every durable state a cut now could leave: the directory as fsynced plus any prefix of
 * the directory operations since, and the qf plus any subset of its writes since its last
 * fsync (the kernel writes pages back when it likes). */
static void upd_cut(int cut, int qf_ino, struct upd_check *c)
{
    int n_wb = fs.ino[qf_ino].n_wb;
    for (int prefix = 0; prefix <= fs.n_log; prefix++) {
        struct dir d = fs.dur;
        for (int i = 0; i < prefix; i++)
            dirop_apply(&d, &fs.log[i]);
        for (unsigned mask = 0; mask < (1u << n_wb); mask++) {
            c->why[0] = '\0';
            upd_check_state(&d, qf_ino, mask, c);
            if (c->bad)
                fail_msg("power cut after %d completions (order %d seed %u), %d directory "
                         "operations and writes %#x kept: %s\ntrace:\n%s",
                         cut, fs.order, fs.seed, prefix, mask, c->why, fs.trace);
        }
    }
}

/* Commits the message the update and removal cuts start from; its qf's inode. */
static int upd_commit(struct spool_worker *sw, char qid[QID_LEN + 1])
{
    char qfpath[64];
    int committed = 0;
    struct spool_msg *m = spool_msg_new(sw, qid);
    assert_int_equal(spool_msg_write(m, "data\r\n", 6), 0);
    spool_msg_commit(m, &upd_env, upd_done, &committed);
    while (pump())
        ;
    assert_int_equal(committed, 1);
    assert_true(spool_msg_path(sp, "qf", qid, qfpath, sizeof(qfpath)) > 0);
    int qf = dir_find(&fs.vol, qfpath);
    assert_true(qf >= 0);
    return fs.vol.e[qf].ino;
}

/* An update then a removal (spool_remove); or, `delete_only`, a removal without an update
 * (spool_delete, the queue manager's way when no recipient is left), after which the
 * message must be whole or gone, and gone for good once the removal was acknowledged. */
static void upd_power_cuts(int order, unsigned seed, bool delete_only)
{
    char qid[QID_LEN + 1], err[256];
    int steps = -1, total = 0;

    for (int cut = 0; steps < 0 || cut <= steps; cut++) {
        model_reset(order, seed, false);
        struct spool_worker *sw = spool_worker_new_fs(sp, &fake_fs, NULL, 1);
        assert_non_null(sw);
        int qf_ino = upd_commit(sw, qid), updated = 0, removed = 0;
        struct upd_check c = {.removing = delete_only};
        fs.trace_len = 0;
        if (delete_only) {
            assert_int_equal(spool_delete(sw, qid, true, upd_done, &removed), 0);
        } else {
            struct envelope e;
            const struct inode *in = &fs.ino[qf_ino];
            if (envelope_parse(in->vol, in->vol_len, &e, err, sizeof(err)) < 0)
                fail_msg("%s", err);
            size_t idx[2] = {0, 2};
            for (int i = 0; i < UPD_RCPTS; i++)
                e.rcpts[i].state = upd_new_state[i];
            e.attempts = UPD_ATTEMPTS;
            e.next_attempt = UPD_NEXT;
            assert_int_equal(spool_update(sw, &e, idx, 2, upd_done, &updated), 0);
            envelope_free(&e);
        }
        int step = 0;
        for (;; step++) {
            c.acked = updated == 1;
            c.gone = delete_only && removed == 1;
            if (updated == 1 && !c.removing) {
                c.removing = true;
                assert_int_equal(spool_remove(sw, qid, true, upd_done, &removed), 0);
            }
            if (step == cut) {
                upd_cut(cut, qf_ino, &c);
                total++;
            }
            if (!pump())
                break;
        }
        assert_int_equal(updated, delete_only ? 0 : 1);
        assert_int_equal(removed, 1);
        if (steps < 0)
            steps = step;
        spool_worker_free(sw);
    }
    print_message("%s, depth %u order %d seed %u: %d completions, %d cuts\n",
                  delete_only ? "delete" : "update and remove", depth, order, seed, steps, total);
}

static void upd_all_orders(bool delete_only)
{
    upd_power_cuts(ORDER_FIFO, 0, delete_only);
    upd_power_cuts(ORDER_LIFO, 0, delete_only);
    for (unsigned seed = 1; seed <= 4; seed++)
        upd_power_cuts(ORDER_RANDOM, seed, delete_only);
}

static void test_cut_update_remove(void **state)
{
    (void)state;
    upd_all_orders(false);
}

static void test_cut_delete(void **state)
{
    (void)state;
    upd_all_orders(true);
}

/* spool_update_schedule: acknowledged without an fsync. The file says the new schedule;
 * stable storage still holds what the commit made durable, a whole envelope with the old
 * schedule, so a power cut now brings the next attempt forward and changes nothing else. A
 * recipient update (spool_update) after it is fsynced with the schedule. */
static void test_schedule_update_unsynced(void **state)
{
    (void)state;
    char qid[QID_LEN + 1], err[256];
    model_reset(ORDER_FIFO, 0, false);
    struct spool_worker *sw = spool_worker_new_fs(sp, &fake_fs, NULL, 1);
    assert_non_null(sw);
    int qf_ino = upd_commit(sw, qid), updated = 0;
    const struct inode *in = &fs.ino[qf_ino];
    size_t dur_len = in->dur_len;
    char *dur = malloc(dur_len);
    assert_non_null(dur);
    memcpy(dur, in->dur, dur_len);

    struct envelope e;
    if (envelope_parse(in->vol, in->vol_len, &e, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    e.attempts = UPD_ATTEMPTS;
    e.next_attempt = UPD_NEXT;
    assert_int_equal(spool_update_schedule(sw, &e, upd_done, &updated), 0);
    envelope_free(&e);
    while (pump())
        ;
    assert_int_equal(updated, 1);
    assert_int_equal(in->dur_len, dur_len);
    assert_memory_equal(in->dur, dur, dur_len); /* no fsync was issued */
    struct envelope seen, kept;
    if (envelope_parse(in->vol, in->vol_len, &seen, err, sizeof(err)) < 0 ||
        envelope_parse(in->dur, in->dur_len, &kept, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(seen.attempts, UPD_ATTEMPTS);
    assert_int_equal(seen.next_attempt, UPD_NEXT);
    assert_int_equal(kept.attempts, upd_env.attempts);
    assert_int_equal(seen.n_rcpts, kept.n_rcpts);
    for (size_t i = 0; i < seen.n_rcpts; i++)
        assert_int_equal(seen.rcpts[i].state, kept.rcpts[i].state);

    /* the same schedule with a recipient's state: fsynced, schedule and all */
    size_t idx[1] = {0};
    seen.rcpts[0].state = ENV_RCPT_DELIVERED;
    updated = 0;
    assert_int_equal(spool_update(sw, &seen, idx, 1, upd_done, &updated), 0);
    while (pump())
        ;
    assert_int_equal(updated, 1);
    envelope_free(&kept);
    if (envelope_parse(in->dur, in->dur_len, &kept, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(kept.attempts, UPD_ATTEMPTS);
    assert_int_equal(kept.next_attempt, UPD_NEXT);
    assert_int_equal(kept.rcpts[0].state, ENV_RCPT_DELIVERED);
    envelope_free(&seen);
    envelope_free(&kept);
    free(dur);
    spool_worker_free(sw);
}

static const unsigned flat = 0, deep = 2;

int main(void)
{
    log_set_level(LOG_LVL_ERROR); /* recovery reports every file of every cut */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cut_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_short_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_random_orders, setup, teardown),
        cmocka_unit_test_prestate_setup_teardown(test_cut_random_orders, setup, teardown,
                                                 (void *)&flat),
        cmocka_unit_test_prestate_setup_teardown(test_cut_random_orders, setup, teardown,
                                                 (void *)&deep),
        cmocka_unit_test_setup_teardown(test_cut_update_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_delete, setup, teardown),
        cmocka_unit_test_prestate_setup_teardown(test_cut_update_remove, setup, teardown,
                                                 (void *)&flat),
        cmocka_unit_test_setup_teardown(test_schedule_update_unsynced, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
