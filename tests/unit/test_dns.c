/*
 * tests/unit/test_dns.c — util/dns on a real engine worker against a real dnsmasq.
 *
 * The group setup starts dnsmasq (Debian's dnsmasq-base) on an address of its own, random
 * in 127.0.0.0/8, and on ::1, on a port nothing else uses, with a zone given on its
 * command line (MX with equal and different preferences, null MX, CNAMEs, AAAA, a host
 * with many addresses, an MX list longer than 512 bytes so c-ares retries over TCP) and
 * `--local=/test/` so any other .test name is NXDOMAIN. Server failures come from a
 * responder in this program (dnsmasq cannot be made to answer SERVFAIL on its own),
 * timeouts from a UDP socket that never answers. Nothing leaves loopback.
 *
 * dns_* calls run on the engine's worker thread (jobs posted with engine_post); callbacks
 * record copies of their results and every assertion is made here. Skips (77) when the
 * kernel refuses io_uring or dnsmasq is not installed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_fixture.h"
#include "util/dns.h"

#define DNSMASQ  "/usr/sbin/dnsmasq"
#define MAX_RECS 1024
#define BIG_MX   70 /* MX records of big.test: more than DNS_MAX_HOSTS, more than 512 bytes */
#define MANY_V4  20 /* A records of many.test: more than DNS_MAX_ADDRS */

struct rec {
    uintptr_t tag;
    bool inside_call; /* the callback ran from inside dns_resolve or dns_cancel */
    enum dns_status status;
    char error[160];
    bool implicit;
    size_t n_hosts;
    size_t n_addrs0;    /* addresses of hosts[0] */
    char summary[4096]; /* "name/pref=addr,addr name/pref=addr" */
};

static struct tstate {
    struct dns *dns; /* the worker's, made and freed by jobs */
    struct rec *recs;
    unsigned nrecs;
    bool inside_call;
    /* the job's parameters, set before it is posted */
    struct dns_settings settings;
    const char *servers[2];
    char server_text[2][64];
    char dns_err[256];
    const char *name;
    bool with_mx;
    bool ptr;    /* job_resolve: a reverse lookup of the address `name` */
    bool exists; /* job_resolve: dns_resolve_exists of `name` */
    int family;
    unsigned count;
    uintptr_t tag;
    /* fixtures */
    pid_t dnsmasq;
    char dir[64];
    struct in_addr addr; /* dnsmasq's, random in 127.0.0.0/8 */
    char addr_text[INET_ADDRSTRLEN];
    uint16_t port;
    int blackhole; /* UDP socket that never answers */
    uint16_t blackhole_port;
    int responder; /* UDP socket answering every query with responder_rcode */
    uint16_t responder_port;
    int responder_rcode;
    pthread_t responder_thread;
    volatile bool responder_stop;
} T;

/* --- the worker side --- */

static void summarize(struct rec *r, const struct dns_mx_result *res)
{
    size_t off = 0;
    for (size_t i = 0; i < res->n_hosts && off < sizeof r->summary; i++) {
        const struct dns_host *h = &res->hosts[i];
        off += (size_t)snprintf(r->summary + off, sizeof r->summary - off, "%s%s/%u=", i ? " " : "",
                                h->name, h->pref);
        for (size_t j = 0; j < h->n_addrs && off < sizeof r->summary; j++) {
            char text[INET6_ADDRSTRLEN] = "?";
            const struct sockaddr_storage *ss = &h->addrs[j];
            if (ss->ss_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, text, sizeof text);
            else if (ss->ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, text,
                          sizeof text);
            off += (size_t)snprintf(r->summary + off, sizeof r->summary - off, "%s%s", j ? "," : "",
                                    text);
        }
    }
}

static void on_result(void *arg, const struct dns_mx_result *res)
{
    pthread_mutex_lock(&F.lock);
    if (T.nrecs < MAX_RECS) {
        struct rec *r = &T.recs[T.nrecs++];
        memset(r, 0, sizeof *r);
        r->tag = (uintptr_t)arg;
        r->inside_call = T.inside_call;
        r->status = res->status;
        snprintf(r->error, sizeof r->error, "%s", res->error);
        r->implicit = res->implicit;
        r->n_hosts = res->n_hosts;
        r->n_addrs0 = res->n_hosts ? res->hosts[0].n_addrs : 0;
        summarize(r, res);
    }
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

static struct dns_query *resolve(const char *name, bool with_mx, int family, uintptr_t tag)
{
    T.inside_call = true;
    struct dns_query *q = dns_resolve(T.dns, name, with_mx, family, on_result, (void *)tag);
    T.inside_call = false;
    return q;
}

static void job_dns_new(struct engine_worker *w)
{
    T.dns = dns_new(w, &T.settings, T.dns_err, sizeof T.dns_err);
}

static void job_dns_free(struct engine_worker *w)
{
    (void)w;
    dns_free(T.dns);
    T.dns = NULL;
}

static void job_resolve(struct engine_worker *w)
{
    (void)w;
    if (T.ptr) {
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, T.name, &sin->sin_addr) == 1)
            sin->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, T.name, &sin6->sin6_addr) == 1)
            sin6->sin6_family = AF_INET6;
        T.inside_call = true;
        dns_resolve_ptr(T.dns, (struct sockaddr *)&ss, on_result, (void *)T.tag);
        T.inside_call = false;
        return;
    }
    if (T.exists) {
        T.inside_call = true;
        dns_resolve_exists(T.dns, T.name, on_result, (void *)T.tag);
        T.inside_call = false;
        return;
    }
    for (unsigned i = 0; i < T.count; i++)
        resolve(T.name, T.with_mx, T.family, T.tag);
}

static void job_nothing(struct engine_worker *w)
{
    (void)w;
}

static void t_on_message(struct engine_worker *w, void *wctx, uint32_t msg)
{
    if (msg == ENGINE_FIXTURE_MSG_EXIT) {
        dns_free(T.dns); /* before the exit: its polls are cancelled at once */
        T.dns = NULL;
    }
    engine_fixture_on_message(w, wctx, msg);
}

/* The engine wants connection callbacks; this program has no listener. */
static const struct engine_callbacks callbacks = {.on_accept = engine_fixture_no_accept,
                                                  .on_recv = engine_fixture_no_recv,
                                                  .on_closed = engine_fixture_no_closed,
                                                  .on_message = t_on_message};

/* --- the test side --- */

static unsigned nrecs(void)
{
    pthread_mutex_lock(&F.lock);
    unsigned n = T.nrecs;
    pthread_mutex_unlock(&F.lock);
    return n;
}

/* Makes the worker's struct dns, asking `servers` (NULL: dnsmasq). */
static void dns_start(const char *server0, const char *server1, unsigned timeout_ms, unsigned tries)
{
    snprintf(T.server_text[0], sizeof T.server_text[0], "%s:%u", T.addr_text, T.port);
    T.servers[0] = server0 ? server0 : T.server_text[0];
    T.servers[1] = server1;
    T.settings = (struct dns_settings){.servers = T.servers,
                                       .n_servers = server1 ? 2 : 1,
                                       .timeout_ms = timeout_ms,
                                       .tries = tries};
    run(job_dns_new);
    if (!T.dns)
        fail_msg("dns_new: %s", T.dns_err);
}

/* Resolves on the worker and waits for the one result. */
static const struct rec *lookup(const char *name, bool with_mx, int family)
{
    unsigned before = nrecs();
    T.ptr = false;
    T.name = name;
    T.with_mx = with_mx;
    T.family = family;
    T.count = 1;
    T.tag = 0;
    run(job_resolve);
    WAIT_FOR(T.nrecs == before + 1);
    const struct rec *r = &T.recs[before];
    assert_false(r->inside_call);
    return r;
}

/* A lookup of `name` of the kind `*mode` selects (T.ptr, T.exists), on the worker; waits
 * for its result. */
static const struct rec *lookup_as(bool *mode, const char *name)
{
    unsigned before = nrecs();
    *mode = true;
    T.name = name;
    T.tag = 0;
    run(job_resolve);
    *mode = false;
    WAIT_FOR(T.nrecs == before + 1);
    const struct rec *r = &T.recs[before];
    assert_false(r->inside_call);
    return r;
}

/* The reverse lookup of an address. */
static const struct rec *lookup_ptr(const char *addr)
{
    return lookup_as(&T.ptr, addr);
}

/* dns_resolve_exists of `name`. */
static const struct rec *lookup_exists(const char *name)
{
    return lookup_as(&T.exists, name);
}

static void expect(const struct rec *r, enum dns_status st, const char *summary)
{
    if (r->status != st || (summary && strcmp(r->summary, summary) != 0))
        fail_msg("got status %d (%s) \"%s\", want %d \"%s\"", r->status, r->error, r->summary, st,
                 summary ? summary : "");
}

static void responder_answer(int fd)
{
    unsigned char buf[512];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
    if (n < 12)
        return;
    buf[2] |= 0x80; /* a response */
    buf[3] = (unsigned char)(0x80 | T.responder_rcode);
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen);
}

static void *responder_main(void *arg)
{
    (void)arg;
    while (!T.responder_stop) {
        struct pollfd p = {.fd = T.responder, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            responder_answer(T.responder);
    }
    return NULL;
}

static int udp_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = T.addr};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        return -1;
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Is dnsmasq answering? One MX query for mx.test over UDP. */
static bool dnsmasq_ready(void)
{
    static const unsigned char query[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                          0x00, 0x00, 0x00, 2,    'm',  'x',  4,    't',  'e',
                                          's',  't',  0,    0,    15,   0,    1};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(T.port), .sin_addr = T.addr};
    bool ok = false;
    if (fd >= 0 && sendto(fd, query, sizeof query, 0, (struct sockaddr *)&to, sizeof to) > 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        unsigned char buf[512];
        ok = poll(&p, 1, 100) > 0 && recv(fd, buf, sizeof buf, 0) > 12;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

static void arg_add(char **argv, size_t *argc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void arg_add(char **argv, size_t *argc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&argv[*argc], fmt, ap) < 0)
        abort();
    va_end(ap);
    (*argc)++;
}

static const char *const zone[] = {
    "--mx-host=mx.test,mx1.mx.test,10",
    "--mx-host=mx.test,mx2.mx.test,10",
    "--mx-host=mx.test,mx3.mx.test,20",
    "--host-record=mx1.mx.test,127.0.0.11",
    "--host-record=mx2.mx.test,127.0.0.12,::12",
    "--host-record=mx3.mx.test,127.0.0.13",
    "--host-record=implicit.test,127.0.0.20,::20",
    "--host-record=v6only.test,::21",
    "--mx-host=nullmx.test,.,0",
    "--cname=alias.test,implicit.test",
    "--cname=cmx.test,mx.test",
    "--mx-host=noaddr.test,ghost.noaddr.test,10",
    "--mx-host=partial.test,ghost.partial.test,10",
    "--mx-host=partial.test,mx3.mx.test,20",
    "--address=/big.test/127.0.2.1",
    "--local=/test/",
    /* reverse names: 127.0.0.55 and ::55 have one, the rest of 127.0.0.x none */
    "--ptr-record=55.0.0.127.in-addr.arpa,named.test",
    ("--ptr-record=5.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa,"
     "named6.test"),
    "--local=/0.0.127.in-addr.arpa/",
};

static pid_t dnsmasq_spawn(void)
{
    char *argv[64 + BIG_MX] = {0};
    size_t argc = 0;
    const struct passwd *pw = getpwuid(getuid());
    arg_add(argv, &argc, "%s", DNSMASQ);
    arg_add(argv, &argc, "--keep-in-foreground");
    arg_add(argv, &argc, "--conf-file=/dev/null");
    arg_add(argv, &argc, "--no-resolv");
    arg_add(argv, &argc, "--no-hosts");
    arg_add(argv, &argc, "--bind-interfaces");
    arg_add(argv, &argc, "--pid-file=");
    arg_add(argv, &argc, "--user=%s", pw ? pw->pw_name : "nobody");
    arg_add(argv, &argc, "--listen-address=%s", T.addr_text);
    arg_add(argv, &argc, "--listen-address=::1");
    arg_add(argv, &argc, "--port=%u", (unsigned)T.port);
    arg_add(argv, &argc, "--addn-hosts=%s/hosts", T.dir);
    arg_add(argv, &argc, "--log-facility=%s/dnsmasq.log", T.dir);
    for (size_t i = 0; i < sizeof zone / sizeof zone[0]; i++)
        arg_add(argv, &argc, "%s", zone[i]);
    for (unsigned i = 1; i <= BIG_MX; i++)
        arg_add(argv, &argc, "--mx-host=big.test,h%u.big.test,%u", i, i % 5);
    pid_t pid = fork();
    if (pid == 0) {
        execv(DNSMASQ, argv);
        _exit(127);
    }
    for (size_t i = 0; i < argc; i++)
        free(argv[i]);
    return pid;
}

static void write_hosts(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/hosts", T.dir);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    for (unsigned i = 1; i <= MANY_V4; i++)
        fprintf(f, "127.0.3.%u many.test\n", i);
    fprintf(f, "::31 many.test\n::32 many.test\n");
    fclose(f);
}

static int group_setup(void **state)
{
    (void)state;
    T.recs = calloc(MAX_RECS, sizeof *T.recs);
    snprintf(T.dir, sizeof T.dir, "/tmp/test_dns.XXXXXX");
    if (!T.recs || !mkdtemp(T.dir))
        return -1;
    write_hosts();
    for (int attempt = 0; attempt < 10 && !T.dnsmasq; attempt++) {
        uint8_t r[5];
        if (getrandom(r, sizeof r, 0) != sizeof r)
            return -1;
        /* 127.x.y.z with x >= 1 (never 127.0.0.x, whose addresses the zone uses) */
        T.addr.s_addr = htonl(0x7f000000u | (uint32_t)(1 + r[0] % 254) << 16 | (uint32_t)r[1] << 8 |
                              (uint32_t)(1 + r[2] % 254));
        inet_ntop(AF_INET, &T.addr, T.addr_text, sizeof T.addr_text);
        T.port = (uint16_t)(20000 + ((unsigned)r[3] << 8 | r[4]) % 40000);
        pid_t pid = dnsmasq_spawn();
        for (int i = 0; i < 50 && pid > 0; i++) {
            if (dnsmasq_ready()) {
                T.dnsmasq = pid;
                break;
            }
            if (waitpid(pid, NULL, WNOHANG) == pid) /* the port was taken: try another */
                pid = 0;
        }
        if (pid > 0 && !T.dnsmasq) {
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
    }
    if (!T.dnsmasq) {
        fprintf(stderr, "dnsmasq did not start (see %s/dnsmasq.log)\n", T.dir);
        return -1;
    }
    T.blackhole = udp_socket(&T.blackhole_port);
    T.responder = udp_socket(&T.responder_port);
    if (T.blackhole < 0 || T.responder < 0 ||
        pthread_create(&T.responder_thread, NULL, responder_main, NULL) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    T.responder_stop = true;
    pthread_join(T.responder_thread, NULL);
    close(T.blackhole);
    close(T.responder);
    if (T.dnsmasq) {
        kill(T.dnsmasq, SIGTERM);
        waitpid(T.dnsmasq, NULL, 0);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", T.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", T.dir);
    free(T.recs);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    struct engine_settings s = {.workers = 1};
    engine_fixture_start(&s, &callbacks, NULL, 0);
    T.nrecs = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (F.e)
        engine_fixture_stop();
    return 0;
}

/* --- tests --- */

/* Equal preferences come in both orders over many lookups; the higher one always last;
 * a host's IPv6 address before its IPv4 one. */
static void test_mx_order(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const char *a = "mx1.mx.test/10=127.0.0.11 mx2.mx.test/10=::12,127.0.0.12 "
                    "mx3.mx.test/20=127.0.0.13";
    const char *b = "mx2.mx.test/10=::12,127.0.0.12 mx1.mx.test/10=127.0.0.11 "
                    "mx3.mx.test/20=127.0.0.13";
    unsigned seen_a = 0, seen_b = 0;
    for (int i = 0; i < 40; i++) {
        const struct rec *r = lookup("mx.test", true, AF_UNSPEC);
        assert_int_equal(r->status, DNS_OK);
        assert_false(r->implicit);
        if (strcmp(r->summary, a) == 0)
            seen_a++;
        else if (strcmp(r->summary, b) == 0)
            seen_b++;
        else
            fail_msg("unexpected answer \"%s\"", r->summary);
    }
    assert_true(seen_a > 0);
    assert_true(seen_b > 0);
}

static void test_family(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    expect(lookup("mx.test", true, AF_INET), DNS_OK, NULL);
    assert_null(strstr(T.recs[0].summary, "::"));
    expect(lookup("implicit.test", false, AF_INET6), DNS_OK, "implicit.test/0=::20");
    expect(lookup("implicit.test", false, AF_INET), DNS_OK, "implicit.test/0=127.0.0.20");
    expect(lookup("v6only.test", false, AF_UNSPEC), DNS_OK, "v6only.test/0=::21");
    expect(lookup("v6only.test", false, AF_INET), DNS_NOTFOUND, NULL);
    /* AAAA answered NXDOMAIN (dnsmasq's --address gives only A) but A found */
    expect(lookup("h1.big.test", false, AF_UNSPEC), DNS_OK, "h1.big.test/0=127.0.2.1");
    expect(lookup("alias.test", false, AF_INET), DNS_OK, "alias.test/0=127.0.0.20");
}

static void test_implicit_mx(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const struct rec *r = lookup("implicit.test", true, AF_UNSPEC);
    expect(r, DNS_OK, "implicit.test/0=::20,127.0.0.20");
    assert_true(r->implicit);
    /* a name that exists with no address at all */
    r = lookup("ghost.implicit.test", true, AF_UNSPEC);
    expect(r, DNS_NOTFOUND, NULL);
}

static void test_null_mx(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const struct rec *r = lookup("nullmx.test", true, AF_UNSPEC);
    expect(r, DNS_NULLMX, "");
    assert_non_null(strstr(r->error, "null MX"));
}

static void test_nxdomain(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const struct rec *r = lookup("nowhere.test", true, AF_UNSPEC);
    expect(r, DNS_NOTFOUND, "");
    assert_non_null(strstr(r->error, "nowhere.test"));
    expect(lookup("nowhere.test", false, AF_UNSPEC), DNS_NOTFOUND, "");
}

/* An MX whose only exchanger has no address: sendmail defers; one that has a second,
 * working exchanger uses it. */
static void test_mx_without_address(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const struct rec *r = lookup("noaddr.test", true, AF_UNSPEC);
    expect(r, DNS_TEMPFAIL, "");
    assert_non_null(strstr(r->error, "ghost.noaddr.test"));
    expect(lookup("partial.test", true, AF_UNSPEC), DNS_OK, "mx3.mx.test/20=127.0.0.13");
}

/* Existence as sendmail's host map asks it: an MX record is enough (its exchanger need
 * not have an address), else the name's own addresses. */
static void test_exists(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const struct rec *r = lookup_exists("noaddr.test");
    expect(r, DNS_OK, "");
    assert_int_equal(r->n_hosts, 0);
    expect(lookup_exists("mx.test"), DNS_OK, "");
    expect(lookup_exists("cmx.test"), DNS_OK, "");
    expect(lookup_exists("nullmx.test"), DNS_NULLMX, "");
    r = lookup_exists("implicit.test");
    expect(r, DNS_OK, "implicit.test/0=::20,127.0.0.20");
    assert_true(r->implicit);
    expect(lookup_exists("v6only.test"), DNS_OK, "v6only.test/0=::21");
    expect(lookup_exists("ghost.implicit.test"), DNS_NOTFOUND, "");
    expect(lookup_exists("nowhere.test"), DNS_NOTFOUND, "");
}

static void test_cname(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    /* CNAME to a name without MX: implicit MX, the alias's addresses */
    const struct rec *r = lookup("alias.test", true, AF_UNSPEC);
    expect(r, DNS_OK, "alias.test/0=::20,127.0.0.20");
    assert_true(r->implicit);
    /* CNAME to a name with MX */
    r = lookup("cmx.test", true, AF_INET);
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->n_hosts, 3);
    assert_non_null(strstr(r->summary, "mx3.mx.test/20=127.0.0.13"));
}

static void test_servfail(void **state)
{
    (void)state;
    char server[64];
    snprintf(server, sizeof server, "%s:%u", T.addr_text, T.responder_port);
    T.responder_rcode = 2;
    dns_start(server, NULL, 500, 1);
    const struct rec *r = lookup("mx.test", true, AF_UNSPEC);
    expect(r, DNS_TEMPFAIL, "");
    if (!strstr(r->error, "SERVFAIL"))
        fail_msg("error \"%s\"", r->error);
    r = lookup("host.test", false, AF_UNSPEC);
    expect(r, DNS_TEMPFAIL, "");
}

/* PTR: the name from the zone, NXDOMAIN as not found, a failing server as temporary. */
static void test_ptr(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    expect(lookup_ptr("127.0.0.55"), DNS_OK, "named.test/0=");
    expect(lookup_ptr("::55"), DNS_OK, "named6.test/0=");
    expect(lookup_ptr("127.0.0.56"), DNS_NOTFOUND, "");
    char server[64];
    snprintf(server, sizeof server, "%s:%u", T.addr_text, T.responder_port);
    T.responder_rcode = 2;
    run(job_dns_free);
    dns_start(server, NULL, 500, 1);
    const struct rec *r = lookup_ptr("127.0.0.55");
    expect(r, DNS_TEMPFAIL, "");
}

static void test_refused(void **state)
{
    (void)state;
    char server[64];
    snprintf(server, sizeof server, "%s:%u", T.addr_text, T.responder_port);
    T.responder_rcode = 5;
    dns_start(server, NULL, 500, 1);
    const struct rec *r = lookup("mx.test", true, AF_UNSPEC);
    expect(r, DNS_TEMPFAIL, "");
    if (!strstr(r->error, "REFUSED"))
        fail_msg("error \"%s\"", r->error);
}

static void test_timeout(void **state)
{
    (void)state;
    char server[64];
    snprintf(server, sizeof server, "%s:%u", T.addr_text, T.blackhole_port);
    dns_start(server, NULL, 100, 2);
    const struct rec *r = lookup("mx.test", true, AF_UNSPEC);
    expect(r, DNS_TEMPFAIL, "");
    assert_non_null(strstr(r->error, "timeout"));
}

/* The first server never answers: the second one does, after the first one's timeout. */
static void test_second_server(void **state)
{
    (void)state;
    char server[64];
    snprintf(server, sizeof server, "%s:%u", T.addr_text, T.blackhole_port);
    snprintf(T.server_text[1], sizeof T.server_text[1], "[::1]:%u", T.port);
    dns_start(server, T.server_text[1], 100, 1);
    expect(lookup("implicit.test", true, AF_INET), DNS_OK, "implicit.test/0=127.0.0.20");
}

/* Answers are bounded: 70 MX records (more than 512 bytes: c-ares retries over TCP) give
 * 64 hosts by preference; 22 addresses give 16, the IPv6 ones first. */
static void test_bounds(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const struct rec *r = lookup("big.test", true, AF_INET);
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->n_hosts, DNS_MAX_HOSTS);
    /* 14 of each preference 0..4: the 64 best are 56 of 0..3 and 8 of preference 4, in
     * order */
    unsigned last = 0, n4 = 0;
    for (const char *p = strchr(r->summary, '/'); p; p = strchr(p + 1, '/')) {
        unsigned pref = (unsigned)atoi(p + 1);
        assert_true(pref >= last);
        last = pref;
        n4 += pref == 4;
    }
    assert_int_equal(n4, 8);
    r = lookup("many.test", false, AF_UNSPEC);
    assert_int_equal(r->status, DNS_OK);
    assert_int_equal(r->n_addrs0, DNS_MAX_ADDRS);
    assert_true(strncmp(r->summary, "many.test/0=::31,::32,127.0.3.", 30) == 0);
}

/* /etc/hosts is read first, as the system resolver does ("localhost" is not in dnsmasq's
 * zone); an address literal is returned as is; a trailing dot is accepted. The answers
 * given at once still come from the loop, not from inside dns_resolve. */
static void test_hosts_literal_dot(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    const struct rec *r = lookup("localhost", false, AF_INET);
    expect(r, DNS_OK, "localhost/0=127.0.0.1");
    expect(lookup("127.0.0.5", false, AF_UNSPEC), DNS_OK, "127.0.0.5/0=127.0.0.5");
    expect(lookup("::1", false, AF_UNSPEC), DNS_OK, "::1/0=::1");
    expect(lookup("implicit.test.", false, AF_INET), DNS_OK, "implicit.test/0=127.0.0.20");
    expect(lookup("", true, AF_UNSPEC), DNS_NOTFOUND, "");
}

static void job_cancel_at_once(struct engine_worker *w)
{
    (void)w;
    dns_cancel(resolve("mx.test", true, AF_UNSPEC, 1));
    dns_cancel(resolve("localhost", false, AF_UNSPEC, 2)); /* answered already */
    resolve("implicit.test", true, AF_UNSPEC, 3);
}

static void test_cancel(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0);
    run(job_cancel_at_once);
    WAIT_FOR(T.nrecs >= 1);
    sleep_ms(200); /* mx.test's answer came at the same time as implicit.test's */
    run(job_nothing);
    assert_int_equal(nrecs(), 1);
    assert_int_equal(T.recs[0].tag, 3);
}

static struct dns_query *pending_query;

static void job_resolve_blackhole(struct engine_worker *w)
{
    (void)w;
    pending_query = resolve("mx.test", true, AF_UNSPEC, 1);
}

static void job_cancel_pending(struct engine_worker *w)
{
    (void)w;
    dns_cancel(pending_query);
}

/* Cancelled while the server has not answered: no callback after its timeout either. */
static void test_cancel_pending(void **state)
{
    (void)state;
    char server[64];
    snprintf(server, sizeof server, "%s:%u", T.addr_text, T.blackhole_port);
    dns_start(server, NULL, 100, 1);
    run(job_resolve_blackhole);
    sleep_ms(20);
    run(job_cancel_pending);
    sleep_ms(400);
    run(job_nothing);
    assert_int_equal(nrecs(), 0);
}

static void job_resolve_then_free(struct engine_worker *w)
{
    (void)w;
    for (int i = 0; i < 10; i++)
        resolve("mx.test", true, AF_UNSPEC, 1);
    resolve("localhost", false, AF_UNSPEC, 2);
    dns_free(T.dns);
    T.dns = NULL;
}

/* dns_free with queries in flight (some with polls in the kernel, some answered but not
 * delivered): no callback, no leak, and the worker exits without waiting for polls. */
static void test_free_in_flight(void **state)
{
    (void)state;
    char server[64];
    snprintf(server, sizeof server, "%s:%u", T.addr_text, T.blackhole_port);
    dns_start(server, NULL, 5000, 1);
    T.name = "big.test";
    T.with_mx = true;
    T.family = AF_UNSPEC;
    T.count = 20;
    run(job_resolve);
    sleep_ms(20);
    run(job_dns_free);
    dns_start(NULL, NULL, 0, 0);
    run(job_resolve_then_free);
    sleep_ms(200);
    run(job_nothing);
    assert_int_equal(nrecs(), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    engine_fixture_stop();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* the engine gives up on unfinished operations after 10 s: the polls were cancelled */
    assert_true(t1.tv_sec - t0.tv_sec < 8);
}

static void job_many(struct engine_worker *w)
{
    (void)w;
    static const char *const names[] = {"mx.test", "implicit.test", "nowhere.test", "partial.test"};
    for (uintptr_t i = 0; i < 400; i++)
        resolve(names[i % 4], true, AF_UNSPEC, i % 4);
}

/* 400 lookups (1,600 queries) sent in one loop turn: a single-threaded dnsmasq drops
 * some of such a burst, which c-ares retries (the short timeout keeps that quick). */
static void test_many_in_flight(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 300, 4);
    run(job_many);
    WAIT_FOR(T.nrecs == 400);
    unsigned ok[4] = {0};
    for (unsigned i = 0; i < 400; i++) {
        const struct rec *r = &T.recs[i];
        assert_false(r->inside_call);
        enum dns_status want = r->tag == 2 ? DNS_NOTFOUND : DNS_OK;
        if (r->status != want)
            fail_msg("tag %lu: status %d (%s)", (unsigned long)r->tag, r->status, r->error);
        ok[r->tag]++;
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(ok[i], 100);
}

static void test_bad_settings(void **state)
{
    (void)state;
    dns_start(NULL, NULL, 0, 0); /* a worker thread for dns_new */
    run(job_dns_free);
    static const char *const bad[] = {
        "not an address", "127.0.0.1:99999", "1.2.3.4,5.6.7.8", "[::1]:0", "[::1", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T.servers[0] = bad[i];
        T.settings = (struct dns_settings){.servers = T.servers, .n_servers = 1};
        run(job_dns_new);
        if (T.dns)
            fail_msg("dns_new accepted \"%s\"", bad[i]);
        assert_non_null(strstr(T.dns_err, "dns.servers"));
    }
}

/* --- dns_mx_parse: answers as bytes --- */

/* dnsmasq's answer for mx.test (mx1 and mx2 at 10, mx3 at 20), as captured in
 * tests/fuzz/corpus/fuzz_dns/mx_equal_prefs. */
static const unsigned char mx_answer[] = {
    0x12, 0x34, 0x85, 0x80, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x02, 0x6d, 0x78,
    0x04, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x0f, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x0f, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x0a, 0x03, 0x6d, 0x78, 0x32, 0xc0, 0x0c,
    0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x0a, 0x03,
    0x6d, 0x78, 0x31, 0xc0, 0x0c, 0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x08, 0x00, 0x14, 0x03, 0x6d, 0x78, 0x33, 0xc0, 0x0c};

/* An answer for x.test with these MX records ("." or "" is the root). */
static size_t build_mx(unsigned char *buf, size_t n, const unsigned *prefs,
                       const char *const *names)
{
    static const unsigned char head[] = {0x12, 0x34, 0x85, 0x80, 0x00, 0x01, 0x00, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 1,    'x',  4,    't',
                                         'e',  's',  't',  0,    0,    15,   0,    1};
    memcpy(buf, head, sizeof head);
    buf[6] = (unsigned char)(n >> 8);
    buf[7] = (unsigned char)n;
    size_t off = sizeof head;
    for (size_t i = 0; i < n; i++) {
        static const unsigned char rr[] = {0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 0, 0};
        memcpy(buf + off, rr, sizeof rr);
        off += sizeof rr;
        size_t rdlen_at = off;
        off += 2;
        buf[off++] = (unsigned char)(prefs[i] >> 8);
        buf[off++] = (unsigned char)prefs[i];
        for (const char *label = names[i]; *label;) {
            size_t len = strcspn(label, ".");
            buf[off++] = (unsigned char)len;
            memcpy(buf + off, label, len);
            off += len;
            label += len + (label[len] == '.');
        }
        buf[off++] = 0;
        size_t rdlen = off - rdlen_at - 2;
        buf[rdlen_at] = (unsigned char)(rdlen >> 8);
        buf[rdlen_at + 1] = (unsigned char)rdlen;
    }
    return off;
}

static struct dns_mx_list mx_list;
static char mx_error[96];

static enum dns_status parse(const unsigned char *answer, size_t len, uint64_t random)
{
    return dns_mx_parse(answer, len, random, &mx_list, mx_error, sizeof mx_error);
}

static void test_parse_order(void **state)
{
    (void)state;
    unsigned mx1_first = 0, mx2_first = 0;
    for (uint64_t random = 0; random < 64; random++) {
        assert_int_equal(parse(mx_answer, sizeof mx_answer, random), DNS_OK);
        assert_int_equal(mx_list.n, 3);
        assert_int_equal(mx_list.hosts[0].pref, 10);
        assert_int_equal(mx_list.hosts[1].pref, 10);
        assert_string_equal(mx_list.hosts[2].name, "mx3.mx.test");
        assert_int_equal(mx_list.hosts[2].pref, 20);
        mx1_first += strcmp(mx_list.hosts[0].name, "mx1.mx.test") == 0;
        mx2_first += strcmp(mx_list.hosts[0].name, "mx2.mx.test") == 0;
    }
    assert_int_equal(mx1_first + mx2_first, 64);
    assert_true(mx1_first > 0 && mx2_first > 0);
}

/* The header's flags and rcode decide before the records are read. */
static void test_parse_header(void **state)
{
    (void)state;
    unsigned char a[sizeof mx_answer];
    static const struct {
        unsigned char byte2_or, byte3;
        enum dns_status want;
        const char *why;
    } cases[] = {
        {0x02, 0x80, DNS_TEMPFAIL, "truncated"}, {0, 0x82, DNS_TEMPFAIL, "SERVFAIL"},
        {0, 0x85, DNS_TEMPFAIL, "REFUSED"},      {0, 0x83, DNS_NOTFOUND, "NXDOMAIN"},
        {0, 0x84, DNS_TEMPFAIL, "rcode 4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(a, mx_answer, sizeof a);
        a[2] |= cases[i].byte2_or;
        a[3] = cases[i].byte3;
        assert_int_equal(parse(a, sizeof a, 0), cases[i].want);
        assert_int_equal(mx_list.n, 0);
        assert_non_null(strstr(mx_error, cases[i].why));
    }
    memcpy(a, mx_answer, sizeof a);
    a[2] &= 0x7f; /* a query, not an answer */
    assert_int_equal(parse(a, sizeof a, 0), DNS_TEMPFAIL);
    for (size_t len = 0; len < sizeof mx_answer; len++) {
        assert_int_equal(parse(mx_answer, len, 0), DNS_TEMPFAIL);
        assert_int_equal(mx_list.n, 0);
    }
}

/* A CNAME without MX at its target is implicit MX, not a null MX (this was the bug: no MX
 * record at all counted as "only root exchangers"). */
static void test_parse_cname_only(void **state)
{
    (void)state;
    static const unsigned char cname_only[] = {
        0x12, 0x34, 0x85, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x61, 0x6c, 0x69, 0x61, 0x73, 0x04, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x0f,
        0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x0b, 0x08, 0x69, 0x6d, 0x70, 0x6c, 0x69, 0x63, 0x69, 0x74, 0xc0, 0x12};
    assert_int_equal(parse(cname_only, sizeof cname_only, 0), DNS_OK);
    assert_int_equal(mx_list.n, 0);
    unsigned char buf[512];
    assert_int_equal(parse(buf, build_mx(buf, 0, NULL, NULL), 0), DNS_OK); /* NODATA */
    assert_int_equal(mx_list.n, 0);
}

static void test_parse_null_mx(void **state)
{
    (void)state;
    unsigned char buf[512];
    static const unsigned prefs[] = {0, 0, 10};
    static const char *const names[] = {"", "", "a.test"};
    assert_int_equal(parse(buf, build_mx(buf, 1, prefs, names), 0), DNS_NULLMX);
    assert_int_equal(parse(buf, build_mx(buf, 2, prefs, names), 0), DNS_NULLMX);
    /* mixed with a real exchanger (RFC 7505 forbids it): the real one is used */
    assert_int_equal(parse(buf, build_mx(buf, 3, prefs, names), 0), DNS_OK);
    assert_int_equal(mx_list.n, 1);
    assert_string_equal(mx_list.hosts[0].name, "a.test");
}

static void test_parse_duplicates_and_bound(void **state)
{
    (void)state;
    unsigned char buf[8192];
    static const unsigned dprefs[] = {10, 10, 20, 5};
    static const char *const dnames[] = {"a.test", "A.Test", "b.test", "b.test"};
    assert_int_equal(parse(buf, build_mx(buf, 4, dprefs, dnames), 0), DNS_OK);
    assert_int_equal(mx_list.n, 2);
    assert_string_equal(mx_list.hosts[0].name, "b.test"); /* its best preference */
    assert_int_equal(mx_list.hosts[0].pref, 5);
    unsigned prefs[BIG_MX];
    char text[BIG_MX][16];
    const char *names[BIG_MX];
    for (unsigned i = 0; i < BIG_MX; i++) {
        prefs[i] = BIG_MX - i;
        snprintf(text[i], sizeof text[i], "h%u.test", i);
        names[i] = text[i];
    }
    assert_int_equal(parse(buf, build_mx(buf, BIG_MX, prefs, names), 7), DNS_OK);
    assert_int_equal(mx_list.n, DNS_MAX_HOSTS);
    for (unsigned i = 0; i < DNS_MAX_HOSTS; i++)
        assert_int_equal(mx_list.hosts[i].pref, i + 1);
}

/* The names a PTR and a DNSBL lookup ask for. */
static void test_reverse_name(void **state)
{
    (void)state;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    char out[128];
    inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
    assert_int_equal(dns_reverse_name((struct sockaddr *)&sin, "bl.test", out, sizeof out), 0);
    assert_string_equal(out, "1.2.0.192.bl.test");
    assert_int_equal(dns_reverse_name((struct sockaddr *)&sin, NULL, out, sizeof out), 0);
    assert_string_equal(out, "1.2.0.192.in-addr.arpa");
    assert_int_equal(dns_reverse_name((struct sockaddr *)&sin, "bl.test", out, 12), -1);
    inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
    assert_int_equal(dns_reverse_name((struct sockaddr *)&sin6, NULL, out, sizeof out), 0);
    assert_string_equal(out,
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    if (!engine_fixture_usable())
        return 77;
    if (access(DNSMASQ, X_OK) != 0) {
        fprintf(stderr, "skipped: %s is not installed (Debian: dnsmasq-base)\n", DNSMASQ);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_order),
        cmocka_unit_test(test_reverse_name),
        cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_parse_cname_only),
        cmocka_unit_test(test_parse_null_mx),
        cmocka_unit_test(test_parse_duplicates_and_bound),
        TEST(test_mx_order),
        TEST(test_ptr),
        TEST(test_family),
        TEST(test_implicit_mx),
        TEST(test_null_mx),
        TEST(test_nxdomain),
        TEST(test_mx_without_address),
        TEST(test_exists),
        TEST(test_cname),
        TEST(test_servfail),
        TEST(test_refused),
        TEST(test_timeout),
        TEST(test_second_server),
        TEST(test_bounds),
        TEST(test_hosts_literal_dot),
        TEST(test_cancel),
        TEST(test_cancel_pending),
        TEST(test_free_in_flight),
        TEST(test_many_in_flight),
        TEST(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
