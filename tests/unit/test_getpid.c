/*
 * util/getpid.c: the remembered pid is the caller's own, in a fork's child too, and it is
 * the one libcrypto sees (so OpenSSL's fork detection, which asks getpid(), still works).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <openssl/rand.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t kernel_pid(void)
{
    return (pid_t)syscall(SYS_getpid);
}

/* The child answers over a pipe: its getpid() against the kernel's, and its next random
 * bytes. */
struct child_report {
    pid_t getpid, kernel;
    unsigned char random[16];
};

static void fork_and_report(struct child_report *out)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct child_report r = {.getpid = getpid(), .kernel = kernel_pid()};
        int ok = RAND_bytes(r.random, sizeof(r.random)) == 1;
        _exit(ok && write(p[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    assert_int_equal(read(p[0], out, sizeof(*out)), (ssize_t)sizeof(*out));
    close(p[0]);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(out->getpid, child);
}

static void test_own_pid(void **state)
{
    (void)state;
    assert_int_equal(getpid(), kernel_pid());
    assert_int_equal(getpid(), kernel_pid()); /* remembered, still right */
    /* the executable's definition is the one the dynamic linker hands to libraries */
    assert_ptr_equal(dlsym(RTLD_DEFAULT, "getpid"), (void *)getpid);
}

static void test_fork_child_asks_again(void **state)
{
    (void)state;
    pid_t parent = getpid();
    struct child_report r;
    fork_and_report(&r);
    assert_int_equal(r.getpid, r.kernel);
    assert_int_not_equal(r.getpid, parent);
    assert_int_equal(getpid(), parent);
}

/* OpenSSL 3.0 reseeds a generator when getpid() changes: a child answered with its
 * parent's pid would draw the very bytes the parent draws next. */
static void test_fork_child_draws_other_random(void **state)
{
    (void)state;
    unsigned char warm[16], mine[16];
    assert_int_equal(RAND_bytes(warm, sizeof(warm)), 1);
    struct child_report r;
    fork_and_report(&r);
    assert_int_equal(RAND_bytes(mine, sizeof(mine)), 1);
    assert_memory_not_equal(mine, r.random, sizeof(mine));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_pid),
        cmocka_unit_test(test_fork_child_asks_again),
        cmocka_unit_test(test_fork_child_draws_other_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
