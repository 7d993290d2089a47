/* The maildrop file format (cli/maildrop.h): what is written reads back the same, the reader
 * refuses every malformed head with its line, and a file is created and committed whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/maildrop.h"
#include "core/config.h"

static FILE *text_file(const char *text)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    return f;
}

static void test_round_trip(void **state)
{
    (void)state;
    char *rcpts[] = {"a@example.com", "b@example.org"};
    struct maildrop_envelope in = {
        .sender = "user@host.example",
        .fullname = "Jane Doe",
        .notify = "SUCCESS,FAILURE",
        .envid = "id-1",
        .rcpts = rcpts,
        .n_rcpts = 2,
    };
    struct buf b;
    buf_init(&b, 0);
    char err[256];
    assert_int_equal(maildrop_format_head(&in, &b, err, sizeof(err)), 0);
    assert_int_equal(buf_append(&b, "Subject: x\r\n\r\nbody\r\n", 20), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "RINGMAIL-MAILDROP 1\nSuser@host.example\nFJane Doe\n"
                                "NSUCCESS,FAILURE\nVid-1\nRa@example.com\nRb@example.org\n\n"
                                "Subject: x\r\n\r\nbody\r\n");
    FILE *f = text_file(b.data);
    struct maildrop_envelope out;
    assert_int_equal(maildrop_read_head(f, &out, err, sizeof(err)), 0);
    assert_string_equal(out.sender, "user@host.example");
    assert_string_equal(out.fullname, "Jane Doe");
    assert_string_equal(out.notify, "SUCCESS,FAILURE");
    assert_string_equal(out.envid, "id-1");
    assert_null(out.ret);
    assert_null(out.body);
    assert_int_equal(out.n_rcpts, 2);
    assert_string_equal(out.rcpts[1], "b@example.org");
    char rest[64] = "";
    assert_int_equal(fread(rest, 1, sizeof(rest) - 1, f), 20);
    assert_string_equal(rest, "Subject: x\r\n\r\nbody\r\n");
    fclose(f);
    maildrop_envelope_free(&out);
    buf_free(&b);
}

/* An empty S record: the caller's own address, made when the file is submitted. */
static void test_empty_sender(void **state)
{
    (void)state;
    FILE *f = text_file("RINGMAIL-MAILDROP 1\nS\nRpostmaster\n\n");
    struct maildrop_envelope e;
    char err[256];
    assert_int_equal(maildrop_read_head(f, &e, err, sizeof(err)), 0);
    assert_string_equal(e.sender, "");
    assert_string_equal(e.rcpts[0], "postmaster");
    fclose(f);
    maildrop_envelope_free(&e);
}

static void expect_bad(const char *text, const char *why)
{
    FILE *f = text_file(text);
    struct maildrop_envelope e;
    char err[256] = "";
    assert_int_equal(maildrop_read_head(f, &e, err, sizeof(err)), -1);
    if (!strstr(err, why))
        fail_msg("expected '%s', got '%s'", why, err);
    fclose(f);
    maildrop_envelope_free(&e);
}

static void test_reader_refuses(void **state)
{
    (void)state;
    expect_bad("", "line 1: the file ends inside the envelope");
    expect_bad("RINGMAIL-MAILDROP 2\nS\nRa\n\n", "line 1: not a maildrop file");
    expect_bad("RINGMAIL-MAILDROP 1\nRa\n\n", "line 2: the sender record (S) must come first");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nS\nRa\n\n", "line 3: a second sender record");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nFa\nFb\nRa\n\n", "line 4: a record given twice");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nXa\nRa\n\n", "line 3: unknown record");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nRa\nFa\n\n", "line 4: a record after the recipients");
    expect_bad("RINGMAIL-MAILDROP 1\nS\n\n", "line 3: no recipient record");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nR\n\n", "line 3: empty value");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nRa\rb\n\n", "line 3: control character");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nRa\n", "line 4: the file ends inside the envelope");
    expect_bad("RINGMAIL-MAILDROP 1\nS\nRa", "line 3: the file ends inside the envelope");
    char *big = malloc(MAILDROP_RECORD_MAX + 64);
    assert_non_null(big);
    int n = snprintf(big, 64, "RINGMAIL-MAILDROP 1\nS\nR");
    memset(big + n, 'x', MAILDROP_RECORD_MAX + 1);
    strcpy(big + n + MAILDROP_RECORD_MAX + 1, "\n\n");
    expect_bad(big, "line 3: record too long");
    free(big);
}

static void test_format_refuses(void **state)
{
    (void)state;
    char *bad[] = {"a@b\r\nRCPT TO:<x>"};
    struct maildrop_envelope e = {.sender = "", .rcpts = bad, .n_rcpts = 1};
    struct buf b;
    buf_init(&b, 0);
    char err[256];
    assert_int_equal(maildrop_format_head(&e, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "recipient: control character in the value");
    e.n_rcpts = 0;
    assert_int_equal(maildrop_format_head(&e, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "no recipients");
    buf_free(&b);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(maildrop_name_valid("1764780000.123.0123456789abcdef"));
    assert_false(maildrop_name_valid(""));
    assert_false(maildrop_name_valid(".tmp-1.2.3"));
    assert_false(maildrop_name_valid("../etc/passwd"));
    assert_false(maildrop_name_valid("a b"));
    char longname[MAILDROP_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(maildrop_name_valid(longname));
}

static size_t count_entries(const char *dir, char *first, size_t len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && n++ == 0) {
            int w = snprintf(first, len, "%s", de->d_name);
            assert_true(w >= 0 && (size_t)w < len);
        }
    closedir(d);
    return n;
}

static void test_create_commit_abort(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_maildrop.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct maildrop_file f;
    char err[256];
    assert_int_equal(maildrop_create("relative/dir", &f, err, sizeof(err)), -1);
    assert_string_equal(err, "maildrop relative/dir: not an absolute path");

    assert_int_equal(maildrop_create(dir, &f, err, sizeof(err)), 0);
    assert_true(maildrop_name_valid(f.name));
    char name[MAILDROP_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%s", f.name);
    assert_int_equal(maildrop_write(&f, "hello", 5, err, sizeof(err)), 0);
    char seen[128];
    assert_int_equal(count_entries(dir, seen, sizeof(seen)), 1);
    assert_int_equal(strncmp(seen, ".tmp-", 5), 0); /* not visible to the pickup yet */
    assert_int_equal(maildrop_commit(&f, err, sizeof(err)), 0);
    assert_int_equal(count_entries(dir, seen, sizeof(seen)), 1);
    assert_string_equal(seen, name);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 5);
    unlink(path);

    assert_int_equal(maildrop_create(dir, &f, err, sizeof(err)), 0);
    maildrop_abort(&f);
    assert_int_equal(count_entries(dir, seen, sizeof(seen)), 0);

    /* The directory itself must not be a symbolic link. */
    char link[300];
    snprintf(link, sizeof(link), "%s.link", dir);
    assert_int_equal(symlink(dir, link), 0);
    assert_int_equal(maildrop_create(link, &f, err, sizeof(err)), -1);
    unlink(link);
    rmdir(dir);
}

/* --pickup reads only the caller's own files, and a file that is not one is refused. */
static void test_submit_file_checks(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_maildrop.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct config cfg = {
        .maildrop = dir, .submission_socket = "/nonexistent/sock", .hostname = "h.example"};
    char path[256];
    snprintf(path, sizeof(path), "%s/1.2.abc", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage\n", 8), 8);
    close(fd);
    /* stdin must not be a regular file here, or it would be read instead */
    int saved = dup(0);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    close(null);
    char *out = NULL;
    size_t outlen = 0;
    FILE *err = open_memstream(&out, &outlen);
    assert_int_equal(maildrop_submit_file(&cfg, "dir/.tmp-x", err), EX_USAGE);
    assert_int_equal(maildrop_submit_file(&cfg, "1.2.abc", err), EX_DATAERR);
    if (getuid() == 0) {
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_int_equal(maildrop_submit_file(&cfg, path, err), EX_NOPERM);
    }
    fd = open(path, O_WRONLY | O_TRUNC);
    unlink(path);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(maildrop_submit_file(&cfg, path, err), EX_NOINPUT);
    fclose(err);
    if (fd >= 0)
        close(fd);
    assert_non_null(strstr(out, "1.2.abc: line 1: not a maildrop file"));
    if (getuid() == 0)
        assert_non_null(strstr(out, "owned by uid 65534, not by the caller"));
    free(out);
    dup2(saved, 0);
    close(saved);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_sender),
        cmocka_unit_test(test_reader_refuses),
        cmocka_unit_test(test_format_refuses),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_create_commit_abort),
        cmocka_unit_test(test_submit_file_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
