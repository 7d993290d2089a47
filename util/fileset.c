/*
 * util/fileset.c — recording, serialising and replaying whole files (util/fileset.h).
 *
 * The serialised form is "RMFILES1", a 32-bit count, then per file: path length (32 bits),
 * errno (32 bits, 0 when read), data length (64 bits), the path, the data; integers in
 * host order, since both ends are the same binary on the same machine.
 */
#include "util/fileset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILESET_MAGIC     "RMFILES1"
#define FILESET_MAX_TOTAL (1ull << 30) /* a configuration's files; far above any real one */

struct fileset_entry {
    char *path;
    int err; /* errno of the failed read, 0 when `data` holds the file */
    char *data;
    size_t len;
};

struct fileset {
    struct fileset_entry *v;
    size_t n, cap;
    int replay; /* answers only from v */
};

struct fileset *fileset_new(void)
{
    return calloc(1, sizeof(struct fileset));
}

void fileset_free(struct fileset *fs)
{
    if (!fs)
        return;
    for (size_t i = 0; i < fs->n; i++) {
        free(fs->v[i].path);
        if (fs->v[i].data)
            explicit_bzero(fs->v[i].data, fs->v[i].len); /* private keys among them */
        free(fs->v[i].data);
    }
    free(fs->v);
    free(fs);
}

static struct fileset_entry *fileset_find(const struct fileset *fs, const char *path)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->v[i].path, path) == 0)
            return &fs->v[i];
    return NULL;
}

static int fileset_fail(int e, const char *path, char *err, size_t errlen)
{
    if (e == EFBIG)
        snprintf(err, errlen, "%s: too large for what it is named as", path);
    else if (e == EINVAL)
        snprintf(err, errlen, "%s: not a regular file", path);
    else if (e == FILESET_ENOTPRIVATE)
        snprintf(err, errlen,
                 "%s: holds credentials but others than its owner may read it, or its owner is "
                 "not root: refused (chown root %s; chmod 600 %s)",
                 path, path, path);
    else
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
    return -e;
}

/* O_NONBLOCK and the regular-file check: a FIFO or a device named in a configuration must
 * not hang or feed the daemon. */
static int fileset_read_disk(const char *path, size_t max, bool private, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return errno;
    struct stat st;
    int e = 0;
    char *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &st) < 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = EINVAL;
    else if (private && (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO))))
        e = FILESET_ENOTPRIVATE;
    else if ((uint64_t)st.st_size > max)
        e = EFBIG;
    else if (!(buf = malloc((size_t)st.st_size + 2)))
        e = ENOMEM;
    /* Read to the end, not to st_size: the file may be growing; one byte of room tells. */
    while (!e) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            e = errno;
        else if (r == 0)
            break;
        else if ((n += (size_t)r) > (size_t)st.st_size)
            e = EFBIG;
    }
    close(fd);
    if (e) {
        free(buf);
        return e;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static int fileset_keep(struct fileset *fs, const char *path, int e, const char *data, size_t len)
{
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? 2 * fs->cap : 16;
        struct fileset_entry *v = realloc(fs->v, cap * sizeof(*v));
        if (!v)
            return -1;
        fs->v = v;
        fs->cap = cap;
    }
    struct fileset_entry *x = &fs->v[fs->n];
    *x = (struct fileset_entry){.path = strdup(path), .err = e, .len = len};
    if (!x->path || (!e && !(x->data = malloc(len + 1)))) {
        free(x->path);
        return -1;
    }
    if (!e) {
        memcpy(x->data, data, len);
        x->data[len] = '\0';
    }
    fs->n++;
    return 0;
}

static int fileset_copy(const struct fileset_entry *x, size_t max, char **data, size_t *len,
                        char *err, size_t errlen)
{
    if (x->err)
        return fileset_fail(x->err, x->path, err, errlen);
    if (x->len > max)
        return fileset_fail(EFBIG, x->path, err, errlen);
    if (!(*data = malloc(x->len + 1)))
        return fileset_fail(ENOMEM, x->path, err, errlen);
    memcpy(*data, x->data, x->len + 1);
    *len = x->len;
    return 0;
}

static int fileset_read_as(struct fileset *fs, const char *path, size_t max, bool private,
                           char **data, size_t *len, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    const struct fileset_entry *x = fs ? fileset_find(fs, path) : NULL;
    if (x)
        return fileset_copy(x, max, data, len, err, errlen);
    if (fs && fs->replay) {
        snprintf(err, errlen, "%s: not among the files the privileged parent read", path);
        return -EPERM;
    }
    int e = fileset_read_disk(path, max, private, data, len);
    if (fs && fileset_keep(fs, path, e, *data, *len) < 0) {
        free(*data);
        *data = NULL;
        e = ENOMEM;
    }
    return e ? fileset_fail(e, path, err, errlen) : 0;
}

int fileset_read(struct fileset *fs, const char *path, size_t max, char **data, size_t *len,
                 char *err, size_t errlen)
{
    return fileset_read_as(fs, path, max, false, data, len, err, errlen);
}

int fileset_read_private(struct fileset *fs, const char *path, size_t max, char **data, size_t *len,
                         char *err, size_t errlen)
{
    return fileset_read_as(fs, path, max, true, data, len, err, errlen);
}

int fileset_generate(struct fileset *fs, const char *name,
                     int (*make)(void *arg, char **data, size_t *len), void *arg, char **data,
                     size_t *len, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    const struct fileset_entry *x = fs ? fileset_find(fs, name) : NULL;
    if (x)
        return fileset_copy(x, SIZE_MAX - 1, data, len, err, errlen);
    if (fs && fs->replay) {
        snprintf(err, errlen, "%s: not among what the privileged parent read", name);
        return -EPERM;
    }
    int rc = make(arg, data, len);
    if (rc == 0 && fs && fileset_keep(fs, name, 0, *data, *len) < 0)
        rc = -ENOMEM;
    if (rc < 0) {
        free(*data);
        *data = NULL;
        *len = 0;
        snprintf(err, errlen, "%s: %s", name, strerror(-rc));
    }
    return rc;
}

int fileset_add(struct fileset *fs, const char *path, size_t max)
{
    char *data, err[64];
    size_t len;
    int rc = fileset_read(fs, path, max, &data, &len, err, sizeof(err));
    if (rc == 0) {
        explicit_bzero(data, len);
        free(data);
    }
    return rc == -ENOMEM && !fileset_find(fs, path) ? -ENOMEM : rc;
}

struct fileset_head {
    uint32_t path_len;
    int32_t err;
    uint64_t len;
};

static int fileset_write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int fileset_to_fd(const struct fileset *fs, char *err, size_t errlen)
{
    int fd = memfd_create("ringmail-files", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    uint32_t count = (uint32_t)fs->n;
    int ok = fileset_write_all(fd, FILESET_MAGIC, 8) == 0 &&
             fileset_write_all(fd, &count, sizeof(count)) == 0;
    for (size_t i = 0; ok && i < fs->n; i++) {
        const struct fileset_entry *x = &fs->v[i];
        struct fileset_head h = {(uint32_t)strlen(x->path), x->err, x->len};
        ok = fileset_write_all(fd, &h, sizeof(h)) == 0 &&
             fileset_write_all(fd, x->path, h.path_len) == 0 &&
             fileset_write_all(fd, x->data, x->len) == 0;
    }
    /* Sealed, the receiver may trust that what it parses cannot change under it. */
    if (!ok ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        snprintf(err, errlen, "writing the configuration's files to a memfd: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int fileset_parse(struct fileset *fs, const char *p, size_t size)
{
    uint32_t count;
    if (size < 8 + sizeof(count) || memcmp(p, FILESET_MAGIC, 8) != 0)
        return -1;
    memcpy(&count, p + 8, sizeof(count));
    size_t off = 8 + sizeof(count);
    for (uint32_t i = 0; i < count; i++) {
        struct fileset_head h;
        if (size - off < sizeof(h))
            return -1;
        memcpy(&h, p + off, sizeof(h));
        off += sizeof(h);
        if (h.path_len == 0 || h.path_len > 4096 || size - off < h.path_len ||
            size - off - h.path_len < h.len || (h.err && h.len))
            return -1;
        char path[4097];
        memcpy(path, p + off, h.path_len);
        path[h.path_len] = '\0';
        off += h.path_len;
        if (strlen(path) != h.path_len || fileset_keep(fs, path, h.err, p + off, h.len) < 0)
            return -1;
        off += h.len;
    }
    return off == size ? 0 : -1;
}

struct fileset *fileset_from_fd(int fd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size > FILESET_MAX_TOTAL) {
        snprintf(err, errlen, "the configuration's files: not a file set (size %lld)",
                 (long long)st.st_size);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    struct fileset *fs = map != MAP_FAILED ? fileset_new() : NULL;
    if (fs && fileset_parse(fs, map, size) < 0) {
        fileset_free(fs);
        fs = NULL;
        snprintf(err, errlen, "the configuration's files: damaged file set");
    } else if (!fs) {
        snprintf(err, errlen, "the configuration's files: %s", strerror(errno));
    }
    if (map != MAP_FAILED)
        munmap(map, size);
    if (fs)
        fs->replay = 1;
    return fs;
}
