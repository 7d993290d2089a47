/*
 * When the kernel or a container refuses io_uring, start-up must fail with a message that
 * says so and what to change (issue: "If io_uring is refused ..."). A container's seccomp
 * profile is reproduced for real: a child installs a seccomp filter that answers
 * io_uring_setup with EPERM (as Docker's default profile does) or ENOSYS, then runs
 * engine_probe().
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/engine.h"

static int refuse_io_uring(int error)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)error),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* Runs engine_probe() in a child under the filter; the child's message comes back
 * through a pipe. Returns the probe's result. */
static int probe_refused(int error, char *msg, size_t msglen)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[1024] = "";
        close(fds[0]);
        if (refuse_io_uring(error) < 0)
            _exit(2);
        int r = engine_probe(err, sizeof(err));
        if (write(fds[1], err, strlen(err)) < 0)
            _exit(3);
        _exit(r == 0 ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], msg, msglen - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 2); /* the filter itself was refused */
    return WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_probe_works_here(void **state)
{
    (void)state;
    char err[1024] = "";
    if (engine_probe(err, sizeof(err)) < 0) {
        print_message("io_uring unavailable on this machine: %s\n", err);
        skip();
    }
}

static void test_seccomp_eperm(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(probe_refused(EPERM, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "io_uring is not available"));
    assert_non_null(strstr(msg, "Operation not permitted"));
    assert_non_null(strstr(msg, "kernel.io_uring_disabled"));
    assert_non_null(strstr(msg, "seccomp"));
}

static void test_seccomp_enosys(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(probe_refused(ENOSYS, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "io_uring is not available"));
    assert_non_null(strstr(msg, "CONFIG_IO_URING"));
    assert_non_null(strstr(msg, "seccomp"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_works_here),
        cmocka_unit_test(test_seccomp_eperm),
        cmocka_unit_test(test_seccomp_enosys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
