/*
 * util/engine_ring.c — ring set-up with feature fallback, the provided-buffer ring, and
 * engine_probe(), which turns "the kernel or a container refuses io_uring" into a message
 * an operator can act on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/engine_int.h"

#define ENGINE_BGID 0

/* io_uring hands every file operation that may block (create, write, fsync, rename, unlink
 * on a local file system) to its io-wq workers, by default at most 4 per CPU for each
 * thread (the limit is the thread's, shared by its rings). The spool has one fsync in
 * flight per message being committed, as many as there are sessions: with 8 workers (2 CPUs)
 * only 8 of them could wait for the same journal commit, the rest queued behind it, and a
 * worker committed a quarter to two fifths fewer durable messages per second on a journaled
 * ext4 (docs/benchmarks.md, "io_uring's file workers"). The kernel starts these threads only
 * when work waits for one and lets idle ones exit. */
#define ENGINE_IOWQ_BOUNDED 64u

/* Raises the calling thread's limit, never lowers it; a kernel without the call (before
 * 5.15) keeps its default, which is slower, not wrong. */
static void engine_ring_iowq_raise(struct io_uring *ring)
{
    unsigned cur[2] = {0, 0};
    if (io_uring_register_iowq_max_workers(ring, cur) < 0 || cur[0] >= ENGINE_IOWQ_BOUNDED)
        return;
    unsigned want[2] = {ENGINE_IOWQ_BOUNDED, 0};
    (void)io_uring_register_iowq_max_workers(ring, want);
}

/* SINGLE_ISSUER|DEFER_TASKRUN (6.1) runs completions only when the worker asks for them,
 * COOP_TASKRUN (5.19) at least stops interrupting it; EINVAL means the kernel lacks the
 * flag, so fall back. SUBMIT_ALL keeps one bad SQE from holding back the rest. */
int engine_ring_init(struct io_uring *ring, unsigned entries)
{
    static const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0] && ret == -EINVAL; i++) {
        struct io_uring_params p = {0};
        /* Multishot accept and recv post many CQEs per SQE. */
        p.flags = modes[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 4;
        ret = io_uring_queue_init_params(entries, ring, &p);
    }
    if (ret == 0)
        engine_ring_iowq_raise(ring);
    return ret;
}

void engine_ring_error(int err, char *buf, size_t len)
{
    const char *why;
    switch (err) {
    case EPERM:
    case EACCES:
        why = "The kernel or the container refuses io_uring: check that sysctl "
              "kernel.io_uring_disabled is 0 (or that this user is in "
              "kernel.io_uring_group when it is 1), and in a container allow io_uring_setup, "
              "io_uring_enter and io_uring_register in the seccomp profile (Docker: "
              "--security-opt seccomp=<profile>)";
        break;
    case ENOSYS:
        why = "The kernel was built without io_uring (CONFIG_IO_URING) or a seccomp profile "
              "hides it: allow io_uring_setup, io_uring_enter and io_uring_register (Docker: "
              "--security-opt seccomp=<profile>)";
        break;
    case ENOMEM:
        why = "The kernel could not allocate the ring: raise the locked-memory limit "
              "(ulimit -l, LimitMEMLOCK= in systemd) or lower ring_entries";
        break;
    case EMFILE:
    case ENFILE:
        why = "Out of file descriptors: raise the limit (ulimit -n, LimitNOFILE= in "
              "systemd)";
        break;
    default:
        why = "Check that the kernel supports io_uring and nothing (seccomp, LSM) blocks it";
        break;
    }
    snprintf(buf, len,
             "io_uring is not available: io_uring_setup failed: %s. %s; ringmaild needs "
             "Linux 6.0 or later.",
             strerror(err), why);
}

static size_t engine_page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

/* The ring's memory must be page-aligned and stay put while registered: mmap it. */
static int engine_bufring_register(struct io_uring *ring, unsigned entries,
                                   struct io_uring_buf_ring **out, size_t *bytes)
{
    *bytes = engine_page_round(entries * sizeof(struct io_uring_buf));
    void *mem = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)br, .ring_entries = entries, .bgid = ENGINE_BGID};
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        munmap(mem, *bytes);
        return ret;
    }
    *out = br;
    return 0;
}

int engine_bufring_new(struct engine_worker *w, unsigned nbufs, unsigned bufsize)
{
    w->bufs_bytes = engine_page_round((size_t)nbufs * bufsize);
    void *mem =
        mmap(NULL, w->bufs_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    int ret = engine_bufring_register(&w->ring, nbufs, &w->br, &w->br_bytes);
    if (ret < 0) {
        munmap(mem, w->bufs_bytes);
        return ret;
    }
    w->bufs = mem;
    int mask = io_uring_buf_ring_mask(nbufs);
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * bufsize, bufsize, (unsigned short)i,
                              mask, (int)i);
    io_uring_buf_ring_advance(w->br, (int)nbufs);
    return 0;
}

void engine_bufring_put(struct engine_worker *w, unsigned bid)
{
    unsigned size = w->e->s.recv_buffer_size;
    io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * size, size, (unsigned short)bid,
                          io_uring_buf_ring_mask(w->e->s.recv_buffers), 0);
    io_uring_buf_ring_advance(w->br, 1);
}

/* After the ring is gone: the kernel holds no reference to the memory any more. */
void engine_bufring_free(struct engine_worker *w)
{
    if (w->br)
        munmap(w->br, w->br_bytes);
    if (w->bufs)
        munmap(w->bufs, w->bufs_bytes);
    w->br = NULL;
    w->bufs = NULL;
}

struct engine_probe_op {
    int op;
    const char *name;
    const char *linux;
};

/* SEND_ZC arrived with multishot recv in 6.0: the probe cannot see multishot itself. */
static const struct engine_probe_op engine_probe_ops[] = {
    {IORING_OP_ACCEPT, "ACCEPT", "5.5"},      {IORING_OP_CONNECT, "CONNECT", "5.5"},
    {IORING_OP_RECV, "RECV", "5.6"},          {IORING_OP_SEND, "SEND", "5.6"},
    {IORING_OP_READ, "READ", "5.6"},          {IORING_OP_WRITE, "WRITE", "5.6"},
    {IORING_OP_FSYNC, "FSYNC", "5.1"},        {IORING_OP_OPENAT, "OPENAT", "5.6"},
    {IORING_OP_CLOSE, "CLOSE", "5.6"},        {IORING_OP_RENAMEAT, "RENAMEAT", "5.11"},
    {IORING_OP_UNLINKAT, "UNLINKAT", "5.11"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL", "5.5"},
    {IORING_OP_SEND_ZC, "SEND_ZC", "6.0"},
};

static int engine_probe_ring(struct io_uring *ring, char *err, size_t errlen)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p) {
        snprintf(err, errlen,
                 "io_uring is not available: the kernel does not answer IORING_REGISTER_PROBE "
                 "(Linux 5.6); ringmaild needs Linux 6.0 or later.");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof engine_probe_ops / sizeof engine_probe_ops[0]; i++) {
        const struct engine_probe_op *o = &engine_probe_ops[i];
        if (!io_uring_opcode_supported(p, o->op)) {
            snprintf(err, errlen,
                     "io_uring is missing IORING_OP_%s (Linux %s): ringmaild needs Linux 6.0 "
                     "or later (multishot accept and recv, provided buffer rings).",
                     o->name, o->linux);
            rc = -1;
            break;
        }
    }
    io_uring_free_probe(p);
    if (rc < 0)
        return rc;

    struct io_uring_buf_ring *br;
    size_t bytes;
    int ret = engine_bufring_register(ring, 8, &br, &bytes);
    if (ret < 0) {
        snprintf(err, errlen,
                 "io_uring refuses provided buffer rings (IORING_REGISTER_PBUF_RING, Linux "
                 "5.19): %s; ringmaild needs Linux 6.0 or later.",
                 strerror(-ret));
        return -1;
    }
    io_uring_unregister_buf_ring(ring, ENGINE_BGID);
    munmap(br, bytes);
    return 0;
}

int engine_probe(char *err, size_t errlen)
{
    struct io_uring ring;
    int ret = engine_ring_init(&ring, 8);
    if (ret < 0) {
        engine_ring_error(-ret, err, errlen);
        return -1;
    }
    int rc = engine_probe_ring(&ring, err, errlen);
    io_uring_queue_exit(&ring);
    return rc;
}
