/*
 * tests/tools/outbound_send.c — delivers one message through delivery/outbound on a real
 * engine and resolver, for test_outbound.py.
 *
 *   outbound_send [options] RCPT...  < message
 *
 *   --from ADDR          envelope sender ("" = <>)
 *   --route VALUE        the next hop as a mailertable value ("[127.0.0.1]:2525",
 *                        "esmtp:example.test"); default: MX of the first recipient's domain.
 *                        Given several times: job i goes to route i % n
 *   --dns SERVER         resolver ("127.0.0.1:5353"); default: the system's
 *   --helo NAME          default "client.test"
 *   --timeout MS         every SMTP phase (default 10000); --connect-timeout MS (5000),
 *                        --iconnect MS (0 = connect; given: the job is a first attempt)
 *   --tls LEVEL          default policy: none, may, encrypt, verify (default: no TLS
 *                        context at all unless --ca or --tls is given)
 *   --ca FILE            trusted CA for verification; --match NAME: expected name
 *   --policy DEST=LEVEL  a tls_policy table entry; --access KEY=VALUE an access map entry
 *   --jobs N             the message N times (default 1); --parallel N at once (default 1);
 *                        --interval MS between the end of one job and the start of the next
 *   --workers N          engine workers, jobs spread over them (default 1)
 *   --cache N            connection cache size (default 0); --cache-timeout MS (5000)
 *   --concurrency N, --rate N, --host-status MS   destination limits (default none)
 *   --family 4|6         addresses to use (default both)
 *   --smtputf8, --body 7|8, --ret FULL|HDRS, --envid X, --notify BITS (ENV_NOTIFY_*)
 *
 * A throttled job is tried again at its retry_at, as the queue manager would. Prints one
 * JSON line per recipient per job (job, rcpt, outcome, code, enh, text, local, relay_host,
 * relay_addr, tls, dsn, throttled (how many times), stat) and exits 0; 2 on usage errors.
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "delivery/outbound.h"
#include "tls/tls_ctx.h"
#include "util/buf.h"
#include "util/dns.h"
#include "util/engine.h"
#include "util/log.h"

#define MAX_LIST 32

static struct {
    const char *from, *route_value[MAX_LIST], *dns_server, *helo, *ca, *match;
    size_t n_routes;
    const char *rcpts[MAX_LIST];
    size_t n_rcpts;
    struct tlspolicy_entry policy[MAX_LIST];
    size_t n_policy;
    const char *access_key[MAX_LIST], *access_value[MAX_LIST];
    size_t n_access;
    bool tls_given;
    enum tlspolicy_level level;
    unsigned timeout, connect_timeout, iconnect, jobs, parallel, interval, workers, cache,
        cache_timeout;
    unsigned concurrency, rate, host_status, notify;
    int family, body, ret;
    bool smtputf8;
    const char *envid;
    struct route route[MAX_LIST];
    char *data;
    size_t len;
    struct tls_ctx *tls;
    struct dest_table *dest;
    struct tlspolicy_settings tlsp;
    struct smtp_client_rcpt rcpt[MAX_LIST];
    pthread_mutex_t out_lock;
} O = {.from = "sender@client.test",
       .helo = "client.test",
       .timeout = 10000,
       .connect_timeout = 5000,
       .jobs = 1,
       .parallel = 1,
       .workers = 1,
       .cache_timeout = 5000,
       .out_lock = PTHREAD_MUTEX_INITIALIZER};

struct tool_job {
    struct tool_worker *tw;
    unsigned index, throttled;
    struct outbound_job job;
    struct engine_timer retry;
};

struct tool_worker {
    struct engine_worker *w;
    struct dns *dns;
    struct outbound_worker *ow;
    struct outbound_settings s;
    struct tool_job *jobs;
    unsigned n_jobs, next, running, finished;
    bool ending;
    struct engine_timer bye, pause;
};

static const char *tool_access(void *arg, const char *key)
{
    (void)arg;
    for (size_t i = 0; i < O.n_access; i++)
        if (strcmp(O.access_key[i], key) == 0)
            return O.access_value[i];
    return NULL;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void tool_print(const struct tool_job *j, const struct outbound_result *r)
{
    static const char *const outcomes[] = {"delivered", "deferred", "failed"};
    pthread_mutex_lock(&O.out_lock);
    for (size_t i = 0; i < r->n_rcpts; i++) {
        const struct outbound_rcpt_result *p = &r->rcpts[i];
        char stat[1024];
        printf("{\"job\": %u, \"rcpt\": ", j->index);
        json_string(stdout, O.rcpt[i].addr);
        printf(", \"outcome\": \"%s\", \"code\": %d, \"enh\": ", outcomes[p->outcome],
               p->reply.code);
        json_string(stdout, p->reply.enh);
        printf(", \"text\": ");
        json_string(stdout, p->reply.text);
        printf(", \"local\": %s, \"relay_host\": ", p->reply.local ? "true" : "false");
        json_string(stdout, r->relay_host);
        printf(", \"relay_addr\": ");
        json_string(stdout, r->relay_addr);
        printf(", \"tls\": ");
        json_string(stdout, r->tls);
        printf(", \"dsn\": %s, \"connected\": %s, \"throttled\": %u, \"stat\": ",
               r->dsn ? "true" : "false", r->connected ? "true" : "false", j->throttled);
        json_string(stdout, outbound_stat(p, stat, sizeof(stat)));
        printf("}\n");
    }
    fflush(stdout);
    pthread_mutex_unlock(&O.out_lock);
}

static void tool_start_more(struct tool_worker *tw);
static void tool_bye(struct engine_timer *t);

static void tool_done(void *arg, const struct outbound_result *r);

static void tool_deliver(struct tool_job *j)
{
    if (outbound_deliver(j->tw->ow, &j->job, tool_done, j) < 0) {
        fprintf(stderr, "outbound_deliver refused job %u\n", j->index);
        exit(1);
    }
}

static void tool_retry(struct engine_timer *t)
{
    tool_deliver((struct tool_job *)((char *)t - offsetof(struct tool_job, retry)));
}

static void tool_done(void *arg, const struct outbound_result *r)
{
    struct tool_job *j = arg;
    struct tool_worker *tw = j->tw;
    if (r->throttled) {
        j->throttled++;
        engine_timer_arm(tw->w, &j->retry, r->retry_at);
        return;
    }
    tool_print(j, r);
    tw->running--;
    tw->finished++;
    if (O.interval && tw->finished < tw->n_jobs)
        engine_timer_arm(tw->w, &tw->pause, engine_now_ms(tw->w) + O.interval);
    else
        tool_start_more(tw);
}

static void tool_pause_over(struct engine_timer *t)
{
    tool_start_more((struct tool_worker *)((char *)t - offsetof(struct tool_worker, pause)));
}

static void tool_start_more(struct tool_worker *tw)
{
    while (tw->next < tw->n_jobs && tw->running < O.parallel) {
        tw->running++;
        tool_deliver(&tw->jobs[tw->next++]);
    }
    if (tw->finished == tw->n_jobs && !tw->ending) {
        /* QUIT to the cached connections, a moment for their replies, then the end */
        tw->ending = true;
        tw->s.cache_size = 0;
        outbound_worker_configure(tw->ow, &tw->s);
        engine_timer_arm(tw->w, &tw->bye, engine_now_ms(tw->w) + 300);
    }
}

static void tool_bye(struct engine_timer *t)
{
    struct tool_worker *tw = (struct tool_worker *)((char *)t - offsetof(struct tool_worker, bye));
    outbound_worker_free(tw->ow);
    tw->ow = NULL;
    dns_free(tw->dns);
    tw->dns = NULL;
    engine_worker_exit(tw->w);
}

static void *tool_worker_init(struct engine_worker *w, unsigned index)
{
    struct tool_worker *tw = calloc(1, sizeof(*tw));
    char err[256];
    if (!tw)
        exit(1);
    tw->w = w;
    tw->bye.fire = tool_bye;
    tw->pause.fire = tool_pause_over;
    const char *servers[1] = {O.dns_server};
    struct dns_settings ds = {
        .servers = servers, .n_servers = O.dns_server ? 1 : 0, .timeout_ms = 1000, .tries = 2};
    if (!(tw->dns = dns_new(w, &ds, err, sizeof(err)))) {
        fprintf(stderr, "dns_new: %s\n", err);
        exit(2);
    }
    uint32_t t = O.timeout;
    tw->s = (struct outbound_settings){
        .helo_name = O.helo,
        .timeouts = {t, t, t, t, t, t, t, t, t, t, t},
        .iconnect_ms = O.iconnect,
        .connect_ms = O.connect_timeout,
        .cache_size = O.cache,
        .cache_timeout_ms = O.cache_timeout,
        .family = O.family,
        .tls = O.tls,
        .tls_policy = &O.tlsp,
        .dest = O.dest,
    };
    if (!(tw->ow = outbound_worker_new(w, tw->dns, &tw->s)))
        exit(1);
    for (unsigned i = index; i < O.jobs; i += O.workers)
        tw->n_jobs++;
    tw->jobs = calloc(tw->n_jobs ? tw->n_jobs : 1, sizeof(*tw->jobs));
    for (unsigned i = index, k = 0; i < O.jobs; i += O.workers, k++) {
        struct tool_job *j = &tw->jobs[k];
        j->tw = tw;
        j->index = i;
        j->retry.fire = tool_retry;
        j->job = (struct outbound_job){
            .qid = "TESTQID",
            .first_attempt = O.iconnect > 0,
            .route = &O.route[i % O.n_routes],
            .msg = {.sender = O.from,
                    .rcpts = O.rcpt,
                    .n_rcpts = O.n_rcpts,
                    .data = O.data,
                    .len = O.len,
                    .body = O.body,
                    .smtputf8 = O.smtputf8,
                    .dsn_ret = O.ret,
                    .envid = O.envid},
        };
    }
    return tw;
}

static void tool_worker_fini(struct engine_worker *w, void *ctx)
{
    (void)w;
    struct tool_worker *tw = ctx;
    outbound_worker_free(tw->ow);
    dns_free(tw->dns);
    free(tw->jobs);
    free(tw);
}

static void tool_on_message(struct engine_worker *w, void *ctx, uint32_t msg)
{
    (void)w, (void)msg;
    tool_start_more(ctx);
}

static void *tool_on_accept(struct engine_worker *w, engine_conn_id id, unsigned listener,
                            const struct sockaddr *peer, socklen_t peerlen,
                            const struct sockaddr *local, socklen_t locallen)
{
    (void)w, (void)id, (void)listener, (void)peer, (void)peerlen, (void)local, (void)locallen;
    return NULL;
}

static void tool_on_recv(void *ctx, const char *data, size_t len)
{
    (void)ctx, (void)data, (void)len;
}

static void tool_on_closed(void *ctx, int err)
{
    (void)ctx, (void)err;
}

/* The message from stdin, with bare LF made CRLF (the df's form). */
static void tool_read_message(void)
{
    struct buf b = {0};
    int c, prev = 0;
    while ((c = getchar()) != EOF) {
        char crlf[2] = {'\r', '\n'};
        if (c == '\n' && prev != '\r')
            buf_append(&b, crlf, 2);
        else
            buf_append(&b, &(char){(char)c}, 1);
        prev = c;
    }
    O.data = b.data ? b.data : strdup("");
    O.len = b.len;
}

static _Noreturn void usage(const char *why)
{
    fprintf(stderr, "outbound_send: %s (see the comment at the top of the source)\n", why);
    exit(2);
}

static void tool_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = a[0] == '-' && a[1] == '-' && strcmp(a, "--smtputf8") != 0;
        if (takes && !v)
            usage("an option needs a value");
        if (takes)
            i++;
        if (!strcmp(a, "--from"))
            O.from = v;
        else if (!strcmp(a, "--route") && O.n_routes < MAX_LIST)
            O.route_value[O.n_routes++] = v;
        else if (!strcmp(a, "--dns"))
            O.dns_server = v;
        else if (!strcmp(a, "--helo"))
            O.helo = v;
        else if (!strcmp(a, "--timeout"))
            O.timeout = (unsigned)atoi(v);
        else if (!strcmp(a, "--connect-timeout"))
            O.connect_timeout = (unsigned)atoi(v);
        else if (!strcmp(a, "--iconnect"))
            O.iconnect = (unsigned)atoi(v);
        else if (!strcmp(a, "--tls")) {
            O.tls_given = true;
            if (tlspolicy_level_parse(v, &O.level) < 0)
                usage("--tls none|may|encrypt|verify");
        } else if (!strcmp(a, "--ca"))
            O.ca = v;
        else if (!strcmp(a, "--match"))
            O.match = v;
        else if (!strcmp(a, "--policy") && O.n_policy < MAX_LIST) {
            char *eq = strchr(v, '=');
            struct tlspolicy_entry *e = &O.policy[O.n_policy++];
            if (!eq || tlspolicy_level_parse(eq + 1, &e->level) < 0)
                usage("--policy DEST=LEVEL");
            *eq = '\0';
            e->dest = v;
        } else if (!strcmp(a, "--access") && O.n_access < MAX_LIST) {
            char *eq = strchr(v, '=');
            if (!eq)
                usage("--access KEY=VALUE");
            *eq = '\0';
            O.access_key[O.n_access] = v;
            O.access_value[O.n_access++] = eq + 1;
        } else if (!strcmp(a, "--jobs"))
            O.jobs = (unsigned)atoi(v);
        else if (!strcmp(a, "--parallel"))
            O.parallel = (unsigned)atoi(v);
        else if (!strcmp(a, "--interval"))
            O.interval = (unsigned)atoi(v);
        else if (!strcmp(a, "--workers"))
            O.workers = (unsigned)atoi(v);
        else if (!strcmp(a, "--cache"))
            O.cache = (unsigned)atoi(v);
        else if (!strcmp(a, "--cache-timeout"))
            O.cache_timeout = (unsigned)atoi(v);
        else if (!strcmp(a, "--concurrency"))
            O.concurrency = (unsigned)atoi(v);
        else if (!strcmp(a, "--rate"))
            O.rate = (unsigned)atoi(v);
        else if (!strcmp(a, "--host-status"))
            O.host_status = (unsigned)atoi(v);
        else if (!strcmp(a, "--family"))
            O.family = atoi(v) == 4 ? AF_INET : atoi(v) == 6 ? AF_INET6 : AF_UNSPEC;
        else if (!strcmp(a, "--smtputf8"))
            O.smtputf8 = true;
        else if (!strcmp(a, "--body"))
            O.body = atoi(v);
        else if (!strcmp(a, "--ret"))
            O.ret = !strcmp(v, "FULL") ? 1 : !strcmp(v, "HDRS") ? 2 : 0;
        else if (!strcmp(a, "--envid"))
            O.envid = v;
        else if (!strcmp(a, "--notify"))
            O.notify = (unsigned)atoi(v);
        else if (a[0] == '-' && a[1] == '-')
            usage("unknown option");
        else if (O.n_rcpts < MAX_LIST)
            O.rcpts[O.n_rcpts++] = a;
    }
    if (!O.n_rcpts || !O.jobs || !O.parallel || !O.workers)
        usage("no recipient");
}

int main(int argc, char **argv)
{
    char err[512];
    tool_args(argc, argv);
    log_set_level(LOG_LVL_DEBUG);
    for (size_t i = 0; i < O.n_rcpts; i++)
        O.rcpt[i] = (struct smtp_client_rcpt){.addr = O.rcpts[i], .notify = O.notify};
    const char *at = strrchr(O.rcpts[0], '@');
    for (size_t i = 0; i < O.n_routes; i++)
        if (route_parse(O.route_value[i], "esmtp", at ? at + 1 : "", &O.route[i], err,
                        sizeof(err)) < 0 ||
            O.route[i].kind != ROUTE_SMTP)
            usage(err);
    if (!O.n_routes) {
        route_resolve(&(struct route_settings){0}, O.rcpts[0], &O.route[0]);
        if (O.route[0].kind != ROUTE_SMTP)
            usage("the first recipient does not route by SMTP");
        O.n_routes = 1;
    }
    if (O.match)
        for (size_t i = 0; i < O.n_policy; i++)
            O.policy[i].match = O.match;
    O.tlsp = (struct tlspolicy_settings){.default_level = O.level,
                                         .entries = O.policy,
                                         .n_entries = O.n_policy,
                                         .access = O.n_access ? tool_access : NULL};
    if (O.tls_given || O.ca) {
        struct tls_settings ts = {.ca_file = O.ca};
        if (!(O.tls = tls_ctx_new_client(&ts, err, sizeof(err)))) {
            fprintf(stderr, "tls_ctx_new_client: %s\n", err);
            return 2;
        }
    }
    O.dest = dest_table_new(&(struct dest_settings){
        .concurrency = O.concurrency, .rate = O.rate, .host_status_timeout = O.host_status});
    tool_read_message();

    struct engine_settings es = {.workers = O.workers};
    struct engine_callbacks cb = {.worker_init = tool_worker_init,
                                  .worker_fini = tool_worker_fini,
                                  .on_accept = tool_on_accept,
                                  .on_recv = tool_on_recv,
                                  .on_closed = tool_on_closed,
                                  .on_message = tool_on_message};
    struct engine *e = engine_new(&es, &cb, err, sizeof(err));
    if (!e || engine_start(e, err, sizeof(err)) < 0) {
        fprintf(stderr, "engine: %s\n", err);
        return errno == ENOSYS || errno == EPERM ? 77 : 2;
    }
    engine_post(e, 1);
    engine_join(e);
    engine_free(e);
    dest_table_free(O.dest);
    if (O.tls)
        tls_ctx_unref(O.tls);
    tls_ctx_retired_free();
    free(O.data);
    return 0;
}
