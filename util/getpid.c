/*
 * util/getpid.c — getpid() answered from memory, for every caller in the program.
 *
 * OpenSSL 3.0 asks getpid() on each draw from its random generators, to notice a fork
 * (about eight times per TLS 1.3 handshake: the server random, the key share, the
 * signature's nonce, the ticket), and glibc has not cached the answer since 2.25, so each
 * call is a system call. Where the kernel isolates its page tables (Meltdown's PTI), every
 * system call also costs the user code after it its TLB entries. Defining getpid here,
 * in the executable, takes those calls (and the log's) out of the kernel: the dynamic
 * linker binds libcrypto's getpid to the executable's first.
 *
 * The answer is forgotten in the child of every fork() (a pthread_atfork handler,
 * registered before the first answer is kept), so a child never sees its parent's pid.
 * A process made with clone() or vfork() directly, which skip those handlers, must not
 * call getpid() before it execs; nothing here makes one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic pid_t getpid_known; /* 0: ask the kernel */
static pthread_once_t getpid_once = PTHREAD_ONCE_INIT;

static void getpid_forget(void)
{
    atomic_store_explicit(&getpid_known, 0, memory_order_relaxed);
}

static void getpid_watch_forks(void)
{
    pthread_atfork(NULL, NULL, getpid_forget);
}

pid_t getpid(void)
{
    pid_t pid = atomic_load_explicit(&getpid_known, memory_order_relaxed);
    if (pid)
        return pid;
    pthread_once(&getpid_once, getpid_watch_forks);
    pid = (pid_t)syscall(SYS_getpid);
    atomic_store_explicit(&getpid_known, pid, memory_order_relaxed);
    return pid;
}
