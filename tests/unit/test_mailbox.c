/* delivery/mailbox.c: mbox, Maildir and file delivery in a temporary directory: the bytes
 * written (From_ line, >From quoting, Return-Path, LF line ends), locks held by another
 * process (fcntl and dotlock, fresh and stale), a write that fails half-way (RLIMIT_FSIZE
 * in a child) leaving the mailbox as it was, refusals (symlink, directory, hard link,
 * another owner), and Maildir's unique names in new/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "delivery/mailbox.h"

/* 2023-11-14 22:13:20 UTC, a Tuesday */
#define ARRIVAL   1700000000
#define FROM_DATE "Tue Nov 14 22:13:20 2023"

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ringmail-mbox-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

/* A df holding `text`, as the spool writes it (CRLF lines). */
static int df_make(const char *text, size_t len)
{
    char path[256];
    path_in(path, sizeof path, "df.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    return fd;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0;
    FILE *m = open_memstream(&buf, &cap);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    *len = cap;
    return buf;
}

static void assert_file_is(const char *path, const char *want)
{
    size_t len;
    char *got = slurp(path, &len);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static struct mailbox_msg msg_of(int fd, const char *sender)
{
    return (struct mailbox_msg){
        .fd = fd, .sender = sender, .arrival = ARRIVAL, .timeout_s = 1, .hostname = "mx"};
}

static void assert_reply(const struct local_reply *r, uint32_t status, const char *enh)
{
    if (r->status != status || strcmp(r->enh, enh) != 0)
        fail_msg("got %u %s \"%s\", want %u %s", r->status, r->enh, r->text, status, enh);
}

static const char simple_df[] = "Subject: hi\r\n\r\nFrom the body\r\nbye\r\n";

static void deliver_mbox(const char *path, const char *df, const char *sender,
                         struct local_reply *r)
{
    int fd = df_make(df, strlen(df));
    struct mailbox_msg m = msg_of(fd, sender);
    memset(r, 0, sizeof *r);
    mailbox_mbox(path, &m, r);
    close(fd);
}

/* --- the bytes --- */

static void test_mbox_format(void **state)
{
    (void)state;
    char path[256];
    path_in(path, sizeof path, "format");
    struct local_reply r;
    deliver_mbox(path,
                 "Received: by mx\r\nSubject: hi\r\n\r\nFrom me\r\n>From you\r\nFrom\r\n"
                 "Fro\r\nFromage\r\n From x\r\na\rb\r\nFrom ",
                 "alice@example.org", &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    deliver_mbox(path, "Subject: bounce\r\n\r\nx\r\n", "", &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    assert_file_is(path, "From alice@example.org " FROM_DATE "\n"
                         "Return-Path: <alice@example.org>\n"
                         "Received: by mx\nSubject: hi\n\n"
                         ">From me\n>From you\nFrom\nFro\nFromage\n From x\na\rb\n>From \n"
                         "\n"
                         "From MAILER-DAEMON " FROM_DATE "\n"
                         "Return-Path: <>\n"
                         "Subject: bounce\n\nx\n"
                         "\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char lock[300];
    snprintf(lock, sizeof lock, "%s.lock", path);
    assert_int_equal(access(lock, F_OK), -1);
}

/* A message that is one spool file: the agent gets the qf and reads from data_offset on;
 * nothing of the envelope before it reaches the mailbox. */
static void test_mbox_data_offset(void **state)
{
    (void)state;
    static const char qf[] = "V1\nIabc\nRP 00 - a@b\n=\nSubject: one file\r\n\r\nbody\r\n";
    char path[256];
    path_in(path, sizeof path, "offset");
    int fd = df_make(qf, strlen(qf));
    struct mailbox_msg m = msg_of(fd, "a@b");
    m.data_offset = (uint64_t)(strstr(qf, "\n=\n") + 3 - qf);
    struct local_reply r = {0};
    mailbox_mbox(path, &m, &r);
    close(fd);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    assert_file_is(path, "From a@b " FROM_DATE "\nReturn-Path: <a@b>\n"
                         "Subject: one file\n\nbody\n\n");
}

/* The df is read in 16 KiB pieces: a CRLF and a "From " cut by a piece's end. */
static void test_mbox_chunk_edges(void **state)
{
    (void)state;
    enum { CHUNK = 16384 };
    static char df[3 * CHUNK], want[3 * CHUNK + 256];
    size_t n = 0, w = 0;
    w += (size_t)snprintf(want, sizeof want, "From a@b " FROM_DATE "\nReturn-Path: <a@b>\n");
    /* line 1 ends with its CR as the piece's last byte */
    memset(df, 'x', CHUNK - 1);
    n = CHUNK - 1;
    memcpy(df + n, "\r\n", 2);
    n += 2;
    memcpy(want + w, df, CHUNK - 1);
    w += CHUNK - 1;
    want[w++] = '\n';
    /* line 2 ends so that "From " starts 2 bytes before the second piece's end */
    size_t fill = 2 * CHUNK - 2 - n - 2;
    memset(df + n, 'y', fill);
    memset(want + w, 'y', fill);
    n += fill;
    w += fill;
    memcpy(df + n, "\r\nFrom there\r\n", 14);
    n += 14;
    memcpy(want + w, "\n>From there\n\n", 14);
    w += 14;
    want[w] = '\0';

    char path[256];
    path_in(path, sizeof path, "edges");
    int fd = df_make(df, n);
    struct mailbox_msg m = msg_of(fd, "a@b");
    struct local_reply r = {0};
    mailbox_mbox(path, &m, &r);
    close(fd);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    assert_file_is(path, want);

    /* a lone CR as a piece's last byte is kept */
    memset(df, 'x', CHUNK - 1);
    memcpy(df + CHUNK - 1, "\rq\r\n", 4);
    fd = df_make(df, CHUNK + 3);
    m = msg_of(fd, "a@b");
    path_in(path, sizeof path, "edges-cr");
    mailbox_file(path, &m, &r);
    close(fd);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    w = (size_t)snprintf(want, sizeof want, "From a@b " FROM_DATE "\nReturn-Path: <a@b>\n");
    memcpy(want + w, df, CHUNK - 1);
    w += CHUNK - 1;
    memcpy(want + w, "\rq\n\n", 5);
    assert_file_is(path, want);
}

/* --- refusals --- */

static void test_mbox_symlink_refused(void **state)
{
    (void)state;
    char target[256], link_[256];
    path_in(target, sizeof target, "victim");
    path_in(link_, sizeof link_, "link");
    close(open(target, O_CREAT | O_WRONLY, 0600));
    assert_int_equal(symlink(target, link_), 0);
    struct local_reply r;
    deliver_mbox(link_, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_FAILED, "5.2.0");
    assert_non_null(strstr(r.text, "is a symbolic link"));
    assert_int_equal(file_size(target), 0);
}

static void test_mbox_not_regular_refused(void **state)
{
    (void)state;
    char dir[256], once[256], twice[256];
    path_in(dir, sizeof dir, "adir");
    assert_int_equal(mkdir(dir, 0700), 0);
    struct local_reply r;
    deliver_mbox(dir, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_FAILED, "5.2.0");

    /* a hard link would let a user have root's agent write a file it cannot */
    path_in(once, sizeof once, "linked");
    path_in(twice, sizeof twice, "linked2");
    close(open(once, O_CREAT | O_WRONLY, 0600));
    assert_int_equal(link(once, twice), 0);
    deliver_mbox(once, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_FAILED, "5.2.0");
    assert_int_equal(file_size(once), 0);
}

static void test_mbox_other_owner_refused(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char path[256];
    path_in(path, sizeof path, "theirs");
    close(open(path, O_CREAT | O_WRONLY, 0600));
    assert_int_equal(chown(path, 65534, 65534), 0);
    struct local_reply r;
    deliver_mbox(path, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_FAILED, "5.2.0");
    assert_int_equal(file_size(path), 0);
}

/* --- locks --- */

/* A child holding an fcntl lock on `path` until `release` is written to. */
static pid_t lock_holder(const char *path, int *release)
{
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        int fd = open(path, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        char c = fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    close(ready[0]);
    *release = go[1];
    return pid;
}

static void test_mbox_fcntl_lock_held(void **state)
{
    (void)state;
    char path[256], lock[300];
    path_in(path, sizeof path, "locked");
    snprintf(lock, sizeof lock, "%s.lock", path);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    int release;
    pid_t holder = lock_holder(path, &release);
    struct local_reply r;
    deliver_mbox(path, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_DEFERRED, "4.2.0");
    assert_int_equal(file_size(path), 0);
    /* the dotlock it took is gone again */
    assert_int_equal(access(lock, F_OK), -1);
    close(release);
    assert_int_equal(waitpid(holder, NULL, 0), holder);
    deliver_mbox(path, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    assert_true(file_size(path) > 0);
}

static void test_mbox_dotlock_fresh_and_stale(void **state)
{
    (void)state;
    char path[256], lock[300];
    path_in(path, sizeof path, "dotlocked");
    snprintf(lock, sizeof lock, "%s.lock", path);
    close(open(lock, O_CREAT | O_WRONLY, 0600));
    struct local_reply r;
    deliver_mbox(path, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_DEFERRED, "4.2.0");
    assert_int_equal(access(lock, F_OK), 0); /* someone else's: left alone */
    assert_int_equal(access(path, F_OK), -1);

    struct timespec old[2] = {{.tv_sec = time(NULL) - 600}, {.tv_sec = time(NULL) - 600}};
    assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
    deliver_mbox(path, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    assert_int_equal(access(lock, F_OK), -1);
    assert_true(file_size(path) > 0);
}

/* --- a write that fails half-way --- */

static void test_mbox_truncated_back_on_efbig(void **state)
{
    (void)state;
    char path[256];
    path_in(path, sizeof path, "full");
    struct local_reply r;
    deliver_mbox(path, simple_df, "a@b", &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    size_t before_len;
    char *before = slurp(path, &before_len);

    /* 64 KiB of message against a limit 100 bytes above the mailbox: some of it is
     * written before EFBIG */
    static char big[65536];
    for (size_t i = 0; i < sizeof big; i += 64) {
        memset(big + i, 'z', 62);
        memcpy(big + i + 62, "\r\n", 2);
    }
    int fd = df_make(big, sizeof big);
    int res[2];
    assert_int_equal(pipe(res), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {.rlim_cur = before_len + 100, .rlim_max = RLIM_INFINITY};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            _exit(1);
        struct mailbox_msg m = msg_of(fd, "a@b");
        struct local_reply cr = {0};
        mailbox_mbox(path, &m, &cr);
        _exit(write(res[1], &cr, sizeof cr) == sizeof cr ? 0 : 1);
    }
    close(res[1]);
    memset(&r, 0, sizeof r);
    assert_int_equal(read(res[0], &r, sizeof r), (ssize_t)sizeof r);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(res[0]);
    close(fd);
    assert_reply(&r, LOCAL_DEFERRED, "4.2.2");
    assert_non_null(strstr(r.text, "File too large"));
    assert_int_equal(file_size(path), (off_t)before_len);
    assert_file_is(path, before);
    free(before);
}

static void test_mbox_unreadable_df(void **state)
{
    (void)state;
    char path[256];
    path_in(path, sizeof path, "unreadable");
    int dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    struct mailbox_msg m = msg_of(dirfd, "a@b");
    struct local_reply r = {0};
    mailbox_mbox(path, &m, &r);
    close(dirfd);
    assert_reply(&r, LOCAL_DEFERRED, "4.3.0");
    assert_int_equal(file_size(path), 0);
}

/* --- the file mailer --- */

static void test_file_mailer(void **state)
{
    (void)state;
    int fd = df_make(simple_df, strlen(simple_df));
    struct mailbox_msg m = msg_of(fd, "a@b");
    struct local_reply r = {0};

    mailbox_file("/dev/null", &m, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");

    char path[256];
    path_in(path, sizeof path, "archive");
    mailbox_file(path, &m, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    assert_file_is(path, "From a@b " FROM_DATE "\nReturn-Path: <a@b>\n"
                         "Subject: hi\n\n>From the body\nbye\n\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    char missing[256], link_[256];
    path_in(missing, sizeof missing, "no/such/dir");
    mailbox_file(missing, &m, &r);
    assert_reply(&r, LOCAL_FAILED, "5.2.0");

    path_in(link_, sizeof link_, "archive-link");
    assert_int_equal(symlink(path, link_), 0);
    off_t size = file_size(path);
    mailbox_file(link_, &m, &r);
    assert_reply(&r, LOCAL_FAILED, "5.2.0");
    assert_int_equal(file_size(path), size);
    close(fd);
}

/* --- Maildir --- */

static void test_maildir(void **state)
{
    (void)state;
    char md[256], sub[300];
    path_in(md, sizeof md, "home/Maildir/");
    path_in(sub, sizeof sub, "home");
    assert_int_equal(mkdir(sub, 0755), 0);
    int fd = df_make(simple_df, strlen(simple_df));
    struct mailbox_msg m = msg_of(fd, "a@b");
    m.hostname = "mx/1:2";
    struct local_reply r = {0};
    mailbox_maildir(md, &m, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    mailbox_maildir(md, &m, &r);
    assert_reply(&r, LOCAL_DELIVERED, "2.0.0");
    close(fd);

    static const char *const dirs[] = {"", "tmp", "new", "cur"};
    for (size_t i = 0; i < 4; i++) {
        struct stat st;
        snprintf(sub, sizeof sub, "%s%s", md, dirs[i]);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
    }

    char pattern[128];
    snprintf(pattern, sizeof pattern, "^[0-9]+\\.P%ld_Q[0-9]+\\.mx\\\\0571\\\\0722$",
             (long)getpid());
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    char names[2][256];
    int n = 0;
    snprintf(sub, sizeof sub, "%snew", md);
    DIR *d = opendir(sub);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        assert_true(n < 2);
        if (regexec(&re, e->d_name, 0, NULL, 0) != 0)
            fail_msg("unexpected name %s", e->d_name);
        snprintf(names[n++], sizeof names[0], "%s", e->d_name);
        char file[600];
        snprintf(file, sizeof file, "%s/%s", sub, e->d_name);
        assert_file_is(file, "Return-Path: <a@b>\nSubject: hi\n\nFrom the body\nbye\n");
    }
    closedir(d);
    regfree(&re);
    assert_int_equal(n, 2);
    assert_string_not_equal(names[0], names[1]);

    snprintf(sub, sizeof sub, "%stmp", md);
    d = opendir(sub);
    assert_non_null(d);
    int left = 0;
    for (struct dirent *e; (e = readdir(d));)
        left += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(left, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mbox_format),
        cmocka_unit_test(test_mbox_data_offset),
        cmocka_unit_test(test_mbox_chunk_edges),
        cmocka_unit_test(test_mbox_symlink_refused),
        cmocka_unit_test(test_mbox_not_regular_refused),
        cmocka_unit_test(test_mbox_other_owner_refused),
        cmocka_unit_test(test_mbox_fcntl_lock_held),
        cmocka_unit_test(test_mbox_dotlock_fresh_and_stale),
        cmocka_unit_test(test_mbox_truncated_back_on_efbig),
        cmocka_unit_test(test_mbox_unreadable_df),
        cmocka_unit_test(test_file_mailer),
        cmocka_unit_test(test_maildir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
