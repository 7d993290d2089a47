/*
 * util/fileset: what the privileged parent reads is what the engine gets, failures
 * included; a replayed set never reads the disk; a damaged set is refused; a FIFO named in a
 * configuration does not hang the reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/fileset.h"

static char test_dir[] = "/tmp/ringmail-fileset-XXXXXX";

static const char *test_path(const char *name)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof(path[0]), "%s/%s", test_dir, name);
    return p;
}

static void test_write(const char *name, const char *text)
{
    FILE *f = fopen(test_path(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int test_setup(void **state)
{
    (void)state;
    return mkdtemp(test_dir) ? 0 : -1;
}

static int test_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", test_dir);
    return system(cmd);
}

/* Reads `name` through fs: 0 and the text, or the negative errno. */
static int test_read(struct fileset *fs, const char *name, char *out, size_t outlen)
{
    char *data, err[512];
    size_t len;
    int rc = fileset_read(fs, test_path(name), 1 << 20, &data, &len, err, sizeof(err));
    if (rc == 0) {
        assert_int_equal(strlen(data), len); /* NUL-terminated */
        snprintf(out, outlen, "%s", data);
        free(data);
    } else {
        assert_non_null(strstr(err, name)); /* the error names the file */
        snprintf(out, outlen, "%s", err);
    }
    return rc;
}

static struct fileset *test_roundtrip(const struct fileset *rec)
{
    char err[256];
    int fd = fileset_to_fd(rec, err, sizeof(err));
    assert_true(fd >= 0);
    /* sealed: the receiver parses bytes nobody can change any more */
    assert_int_equal(write(fd, "x", 1), -1);
    struct fileset *rep = fileset_from_fd(fd, err, sizeof(err));
    close(fd);
    assert_non_null(rep);
    return rep;
}

static void test_record_and_replay(void **state)
{
    (void)state;
    char text[256];
    test_write("a.yaml", "hostname: mx.test\n");
    test_write("empty", "");
    chmod(test_path("empty"), 0644);
    struct fileset *rec = fileset_new();
    assert_int_equal(test_read(rec, "a.yaml", text, sizeof(text)), 0);
    assert_string_equal(text, "hostname: mx.test\n");
    assert_int_equal(test_read(rec, "empty", text, sizeof(text)), 0);
    assert_int_equal(test_read(rec, "missing", text, sizeof(text)), -ENOENT);
    assert_non_null(strstr(text, "cannot open: No such file or directory"));
    assert_int_equal(fileset_add(rec, test_path("b.key"), 100), -ENOENT);
    test_write("b.key", "secret\n");
    /* a recording set answers a second read from what it kept */
    assert_int_equal(fileset_add(rec, test_path("b.key"), 100), -ENOENT);

    struct fileset *rep = test_roundtrip(rec);
    /* the files change or go away after the parent read them: the engine sees the parent's */
    test_write("a.yaml", "hostname: other.test\n");
    unlink(test_path("empty"));
    assert_int_equal(test_read(rep, "a.yaml", text, sizeof(text)), 0);
    assert_string_equal(text, "hostname: mx.test\n");
    assert_int_equal(test_read(rep, "empty", text, sizeof(text)), 0);
    assert_string_equal(text, "");
    assert_int_equal(test_read(rep, "missing", text, sizeof(text)), -ENOENT);
    assert_int_equal(test_read(rep, "b.key", text, sizeof(text)), -ENOENT);
    /* never a silent read from disk of what the parent did not read */
    test_write("c.pem", "cert\n");
    assert_int_equal(test_read(rep, "c.pem", text, sizeof(text)), -EPERM);
    assert_non_null(strstr(text, "not among the files the privileged parent read"));
    fileset_free(rep);
    fileset_free(rec);
    /* no set: straight from disk */
    assert_int_equal(test_read(NULL, "a.yaml", text, sizeof(text)), 0);
    assert_string_equal(text, "hostname: other.test\n");
}

/* Credentials: refused unless private to their owner (the reader), and the refusal is
 * recorded, so the engine's replay refuses too. */
static void test_private(void **state)
{
    (void)state;
    char *data, err[512];
    size_t len;
    test_write("authinfo", "AuthInfo: \"U:u\" \"P:p\"\n");
    const char *path = test_path("authinfo");
    struct fileset *rec = fileset_new();
    static const mode_t open_modes[] = {0640, 0604, 0620, 0602};
    for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
        chmod(path, open_modes[i]);
        assert_int_equal(fileset_read_private(NULL, path, 100, &data, &len, err, sizeof(err)),
                         -FILESET_ENOTPRIVATE);
        assert_non_null(strstr(err, "holds credentials but others than its owner may read it"));
        assert_non_null(strstr(err, path));
    }
    chmod(path, 0600);
    assert_int_equal(fileset_read_private(NULL, path, 100, &data, &len, err, sizeof(err)), 0);
    free(data);
    chmod(path, 0644);
    assert_int_equal(fileset_read_private(rec, path, 100, &data, &len, err, sizeof(err)),
                     -FILESET_ENOTPRIVATE);
    chmod(path, 0600);
    struct fileset *rep = test_roundtrip(rec);
    assert_int_equal(fileset_read_private(rep, path, 100, &data, &len, err, sizeof(err)),
                     -FILESET_ENOTPRIVATE);
    assert_non_null(strstr(err, "chmod 600"));
    fileset_free(rep);
    fileset_free(rec);
}

static void test_limits_and_odd_files(void **state)
{
    (void)state;
    char text[512], *data, err[256];
    size_t len;
    test_write("big", "0123456789");
    assert_int_equal(fileset_read(NULL, test_path("big"), 9, &data, &len, err, sizeof(err)),
                     -EFBIG);
    assert_int_equal(fileset_read(NULL, test_path("big"), 10, &data, &len, err, sizeof(err)), 0);
    free(data);
    /* a FIFO must not hang the reader (O_NONBLOCK, then "not a regular file") */
    assert_int_equal(mkfifo(test_path("fifo"), 0600), 0);
    assert_int_equal(test_read(NULL, "fifo", text, sizeof(text)), -EINVAL);
    assert_non_null(strstr(text, "not a regular file"));
    assert_int_equal(test_read(NULL, "", text, sizeof(text)), -EINVAL); /* the directory */
}

static void test_damaged_sets_refused(void **state)
{
    (void)state;
    char err[256];
    struct fileset *rec = fileset_new();
    test_write("x", "some bytes");
    assert_int_equal(fileset_add(rec, test_path("x"), 100), 0);
    int fd = fileset_to_fd(rec, err, sizeof(err));
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *all = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, all, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    /* every truncation and a wrong magic are refused, never half-read */
    for (off_t cut = 0; cut < st.st_size; cut++) {
        int t = open(test_dir, O_TMPFILE | O_RDWR, 0600);
        assert_true(t >= 0);
        assert_int_equal(write(t, all, (size_t)cut), cut);
        assert_null(fileset_from_fd(t, err, sizeof(err)));
        close(t);
    }
    all[0] ^= 1;
    int t = open(test_dir, O_TMPFILE | O_RDWR, 0600);
    assert_int_equal(write(t, all, (size_t)st.st_size), st.st_size);
    assert_null(fileset_from_fd(t, err, sizeof(err)));
    assert_non_null(strstr(err, "damaged"));
    close(t);
    free(all);
    fileset_free(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_replay),
        cmocka_unit_test(test_limits_and_odd_files),
        cmocka_unit_test(test_private),
        cmocka_unit_test(test_damaged_sets_refused),
    };
    return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
