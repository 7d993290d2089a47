#include "queue/mailstats.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/* Counters are shared with other processes through the mapping: they must be lock-free,
 * an address-based lock would not be seen by ringmail-stats. */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

#define MAILSTATS_MAGIC "RMSTATS"

/* A slot's name is claimed before it is written: a counting thread that finds a slot being
 * named waits for the name rather than claim a second slot for the same mailer. */
enum { SLOT_FREE, SLOT_NAMING, SLOT_NAMED };

struct mailstats_slot {
    char name[MAILSTATS_NAME_MAX];
    _Atomic uint32_t state;
    uint32_t pad;
    _Atomic uint64_t count[5]; /* by enum mailstats_msg */
    _Atomic uint64_t kbytes_from, kbytes_to;
};

struct mailstats_file {
    char magic[8];
    uint32_t version;
    uint32_t size;
    _Atomic int64_t since;
    _Atomic uint64_t conn[3]; /* by enum mailstats_conn */
    struct mailstats_slot slot[MAILSTATS_MAILERS];
};

struct mailstats {
    struct mailstats_file *f; /* NULL: an empty file, read as zeros */
    int64_t opened;           /* the "since" of an empty file */
};

/* sendmail's mailer numbers for the mailers every sendmail.cf has, then ringmail's others. */
static const char *const mailstats_seed[] = {"prog",  "*file*", "*include*", "local",
                                             "smtp",  "esmtp",  "smtp8",     "dsmtp",
                                             "relay", "lmtp",   "error"};

static struct mailstats *_Atomic mailstats_installed;

static void mailstats_init_image(struct mailstats_file *f)
{
    memset(f, 0, sizeof(*f));
    memcpy(f->magic, MAILSTATS_MAGIC, sizeof(MAILSTATS_MAGIC));
    f->version = MAILSTATS_VERSION;
    f->size = sizeof(*f);
    atomic_init(&f->since, (int64_t)time(NULL));
    for (size_t i = 0; i < sizeof(mailstats_seed) / sizeof(mailstats_seed[0]); i++) {
        snprintf(f->slot[i].name, sizeof(f->slot[i].name), "%s", mailstats_seed[i]);
        atomic_init(&f->slot[i].state, SLOT_NAMED);
    }
}

/* A touched file gets its layout in one write, so a reader sees it empty or whole. */
static int mailstats_lay_out(int fd)
{
    struct mailstats_file *img = malloc(sizeof(*img));
    if (!img)
        return -ENOMEM;
    mailstats_init_image(img);
    ssize_t n = pwrite(fd, img, sizeof(*img), 0);
    free(img);
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(*img) ? 0 : -ENOSPC;
}

static int mailstats_check(const struct mailstats_file *f, const char *path, char *err,
                           size_t errlen)
{
    if (memcmp(f->magic, MAILSTATS_MAGIC, sizeof(MAILSTATS_MAGIC)) != 0) {
        snprintf(err, errlen, "incorrect magic number in %s", path);
        return -EPROTO;
    }
    if (f->version != MAILSTATS_VERSION) {
        snprintf(err, errlen, "version (%d) incompatible with %s version (%u)", MAILSTATS_VERSION,
                 path, f->version);
        return -EPROTO;
    }
    if (f->size != sizeof(*f)) {
        snprintf(err, errlen, "%s: file size changed", path);
        return -EPROTO;
    }
    return 0;
}

/* Reads the header by pread first: a short or foreign file is refused before any mapping,
 * so a mapping never reaches past the end of the file (SIGBUS). */
static int mailstats_validate(int fd, const char *path, off_t size, char *err, size_t errlen)
{
    struct mailstats_file head;
    size_t want = offsetof(struct mailstats_file, since);
    ssize_t n = pread(fd, &head, want, 0);
    if (n < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    if ((size_t)n < want) {
        snprintf(err, errlen, "%s: file size changed", path);
        return -EPROTO;
    }
    int rc = mailstats_check(&head, path, err, errlen);
    if (rc == 0 && size != (off_t)sizeof(head)) {
        snprintf(err, errlen, "%s: file size changed", path);
        return -EPROTO;
    }
    return rc;
}

int mailstats_open(const char *path, enum mailstats_mode mode, struct mailstats **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    bool write = mode != MAILSTATS_READ;
    int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode))
        rc = -EINVAL;
    else if (st.st_size == 0 && mode == MAILSTATS_COUNT && (rc = mailstats_lay_out(fd)) == 0)
        st.st_size = sizeof(struct mailstats_file);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, rc == -EINVAL ? "not a regular file" : strerror(-rc));
        close(fd);
        return rc;
    }
    struct mailstats *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return -ENOMEM;
    }
    s->opened = (int64_t)time(NULL);
    if (st.st_size == 0) { /* touched, not counted into yet: zeros since now */
        close(fd);
        *out = s;
        return 0;
    }
    if ((rc = mailstats_validate(fd, path, st.st_size, err, errlen)) < 0) {
        close(fd);
        free(s);
        return rc;
    }
    void *map =
        mmap(NULL, sizeof(*s->f), write ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    rc = map == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(-rc));
        free(s);
        return rc;
    }
    s->f = map;
    /* a slot left half-named by an engine that died while naming it: the engine is the
     * only one that names slots, one engine per spool */
    for (size_t i = 0; mode == MAILSTATS_COUNT && i < MAILSTATS_MAILERS; i++)
        if (atomic_load(&s->f->slot[i].state) == SLOT_NAMING)
            atomic_store(&s->f->slot[i].state, SLOT_FREE);
    *out = s;
    return 0;
}

void mailstats_close(struct mailstats *s)
{
    if (!s)
        return;
    if (s->f)
        munmap(s->f, sizeof(*s->f));
    free(s);
}

static bool mailstats_name_is(const struct mailstats_slot *slot, const char *mailer)
{
    return strncmp(slot->name, mailer, sizeof(slot->name) - 1) == 0;
}

/* The slot of `mailer`: found by name, else the first free one, named. NULL when full. */
static struct mailstats_slot *mailstats_slot_of(struct mailstats_file *f, const char *mailer)
{
    for (size_t i = 0; i < MAILSTATS_MAILERS; i++) {
        struct mailstats_slot *slot = &f->slot[i];
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (state == SLOT_FREE) {
            uint32_t expect = SLOT_FREE;
            if (atomic_compare_exchange_strong(&slot->state, &expect, SLOT_NAMING)) {
                snprintf(slot->name, sizeof(slot->name), "%s", mailer);
                atomic_store_explicit(&slot->state, SLOT_NAMED, memory_order_release);
                return slot;
            }
            state = expect;
        }
        /* another thread names it: a copy of a few bytes away */
        while (state == SLOT_NAMING)
            state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (mailstats_name_is(slot, mailer))
            return slot;
    }
    return NULL;
}

/* sendmail's KBYTES(): kilobytes of 1000, rounded up, per message. */
static uint64_t mailstats_kbytes(uint64_t size)
{
    return (size + 999) / 1000;
}

void mailstats_add_msg(struct mailstats *s, enum mailstats_msg ev, const char *mailer,
                       uint64_t size)
{
    if (!s || !s->f || !mailer)
        return;
    struct mailstats_slot *slot = mailstats_slot_of(s->f, mailer);
    if (!slot) {
        static atomic_bool said;
        if (!atomic_exchange(&said, true))
            log_warn("statistics: no free slot for mailer %s (%d in use): not counted", mailer,
                     MAILSTATS_MAILERS);
        return;
    }
    atomic_fetch_add_explicit(&slot->count[ev], 1, memory_order_relaxed);
    if (ev == MAILSTATS_FROM)
        atomic_fetch_add_explicit(&slot->kbytes_from, mailstats_kbytes(size), memory_order_relaxed);
    else if (ev == MAILSTATS_TO)
        atomic_fetch_add_explicit(&slot->kbytes_to, mailstats_kbytes(size), memory_order_relaxed);
}

void mailstats_add_conn(struct mailstats *s, enum mailstats_conn ev)
{
    if (s && s->f)
        atomic_fetch_add_explicit(&s->f->conn[ev], 1, memory_order_relaxed);
}

static uint64_t mailstats_take(_Atomic uint64_t *c, bool reset)
{
    return reset ? atomic_exchange(c, 0) : atomic_load_explicit(c, memory_order_relaxed);
}

void mailstats_snapshot(struct mailstats *s, bool reset, struct mailstats_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    out->since = s->opened;
    struct mailstats_file *f = s->f;
    if (!f)
        return;
    out->since = atomic_load(&f->since);
    out->conn_from = mailstats_take(&f->conn[MAILSTATS_CONN_FROM], reset);
    out->conn_to = mailstats_take(&f->conn[MAILSTATS_CONN_TO], reset);
    out->conn_rejected = mailstats_take(&f->conn[MAILSTATS_CONN_REJECT], reset);
    for (unsigned i = 0; i < MAILSTATS_MAILERS; i++) {
        struct mailstats_slot *slot = &f->slot[i];
        if (atomic_load_explicit(&slot->state, memory_order_acquire) != SLOT_NAMED)
            continue;
        struct mailstats_row *r = &out->rows[out->n_rows++];
        r->number = i;
        memcpy(r->name, slot->name, sizeof(r->name));
        r->name[sizeof(r->name) - 1] = '\0';
        r->msgsfr = mailstats_take(&slot->count[MAILSTATS_FROM], reset);
        r->kbytes_from = mailstats_take(&slot->kbytes_from, reset);
        r->msgsto = mailstats_take(&slot->count[MAILSTATS_TO], reset);
        r->kbytes_to = mailstats_take(&slot->kbytes_to, reset);
        r->msgsrej = mailstats_take(&slot->count[MAILSTATS_REJECT], reset);
        r->msgsdis = mailstats_take(&slot->count[MAILSTATS_DISCARD], reset);
        r->msgsqur = mailstats_take(&slot->count[MAILSTATS_QUARANTINE], reset);
    }
    /* after the counters: an event between the two belongs to the new period, whose start
     * is then a moment late, never early */
    if (reset)
        atomic_store(&f->since, (int64_t)time(NULL));
}

void mailstats_attach(const char *path)
{
    if (!path || !*path || atomic_load(&mailstats_installed))
        return;
    char err[512];
    struct mailstats *s;
    int rc = mailstats_open(path, MAILSTATS_COUNT, &s, err, sizeof(err));
    if (rc == -ENOENT) {
        log_info("statistics: %s does not exist: not counting (create it to count)", path);
        return;
    }
    if (rc < 0) {
        log_warn("statistics: not counting: %s", err);
        return;
    }
    atomic_store(&mailstats_installed, s);
    log_info("statistics: counting in %s", path);
}

bool mailstats_attached(void)
{
    return atomic_load(&mailstats_installed) != NULL;
}

void mailstats_detach(void)
{
    mailstats_close(atomic_exchange(&mailstats_installed, NULL));
}

void mailstats_msg(enum mailstats_msg ev, const char *mailer, uint64_t size)
{
    mailstats_add_msg(atomic_load_explicit(&mailstats_installed, memory_order_acquire), ev, mailer,
                      size);
}

void mailstats_conn(enum mailstats_conn ev)
{
    mailstats_add_conn(atomic_load_explicit(&mailstats_installed, memory_order_acquire), ev);
}
