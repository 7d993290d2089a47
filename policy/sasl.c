/*
 * policy/sasl.c — the Cyrus SASL server, its helper threads and the hand-back of results.
 *
 * One exchange (struct sasl_auth) has at most one step in flight. Its fields are split by
 * thread: the step's input and result and the sasl_conn_t are the helper thread's while
 * the step is queued or running, the worker's otherwise; `busy` and `freed` are only ever
 * touched by the worker. A finished step goes into its worker's box under the box lock; the
 * worker takes the box on SASL_ENGINE_MSG, so no exchange is freed while a thread holds it.
 */
#include "policy/sasl.h"

#include <pthread.h>
#include <sasl/sasl.h>
#include <sasl/saslutil.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/engine.h"
#include "util/log.h"

struct sasl_auth {
    struct sasl_pool *pool;
    unsigned worker;
    struct sasl_auth_settings set; /* strings copied into `strings` */
    char *strings;
    void (*done)(void *arg, const struct sasl_result *r);
    void *arg;
    struct sasl_auth *next; /* in the queue or a box */
    sasl_conn_t *conn;      /* created by the first step, on a helper thread */
    bool busy, freed;       /* the worker's */
    /* the step (worker → thread) */
    char mech[24];
    unsigned char *in;
    size_t inlen;
    bool has_in;
    /* its result (thread → worker) */
    enum sasl_status status;
    unsigned char *out;
    size_t outlen;
    char authid[256];
    unsigned ssf;
    char error[300];
};

/* A FIFO of exchanges: the queue, and each worker's box. */
struct sasl_box {
    struct sasl_auth *head, *tail;
};

struct sasl_pool {
    struct engine *engine;
    pthread_mutex_t lock; /* queue, boxes, stop */
    pthread_cond_t work;
    struct sasl_box queue;
    unsigned queued;
    bool stop;
    unsigned workers;
    struct sasl_box *boxes; /* by worker */
    pthread_t threads[SASL_POOL_THREADS];
    unsigned n_threads;
};

static char *sasl_config_dir;

unsigned sasl_option_flags(const char *options)
{
    static const struct {
        char letter;
        unsigned flag;
    } map[] = {
        {'a', SASL_SEC_NOACTIVE},     {'c', SASL_SEC_PASS_CREDENTIALS},
        {'d', SASL_SEC_NODICTIONARY}, {'f', SASL_SEC_FORWARD_SECRECY},
        {'m', SASL_SEC_MUTUAL_AUTH},  {'p', SASL_SEC_NOPLAINTEXT},
        {'y', SASL_SEC_NOANONYMOUS},
    };
    unsigned flags = 0;
    for (size_t i = 0; options && i < sizeof(map) / sizeof(map[0]); i++)
        if (strchr(options, map[i].letter))
            flags |= map[i].flag;
    return flags;
}

static int sasl_cb_getconfpath(void *context, char **path)
{
    (void)context;
    *path = sasl_config_dir;
    return SASL_OK;
}

static int sasl_cb_log(void *context, int level, const char *message)
{
    (void)context;
    if (level <= SASL_LOG_ERR)
        log_warn("SASL: %s", message);
    else if (level <= SASL_LOG_WARN)
        log_info("SASL: %s", message);
    else if (level < SASL_LOG_PASS) /* never SASL_LOG_PASS: it holds passwords */
        log_debug("SASL: %s", message);
    return SASL_OK;
}

/* Without a configuration directory the library's own search applies (a failing
 * GETCONFPATH callback would fail sasl_server_init): the callback goes last, cut off then. */
static sasl_callback_t sasl_callbacks[] = {
    {SASL_CB_LOG, (int (*)(void))(void (*)(void))sasl_cb_log, NULL},
    {SASL_CB_GETCONFPATH, (int (*)(void))(void (*)(void))sasl_cb_getconfpath, NULL},
    {SASL_CB_LIST_END, NULL, NULL},
};

/* The library's own mutexes are no-ops unless it is given real ones; the helper threads
 * share its plug-in state. */
static void *sasl_mutex_new(void)
{
    pthread_mutex_t *m = malloc(sizeof(*m));
    if (m)
        pthread_mutex_init(m, NULL);
    return m;
}

static int sasl_mutex_lock_cb(void *m)
{
    return pthread_mutex_lock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static int sasl_mutex_unlock_cb(void *m)
{
    return pthread_mutex_unlock(m) == 0 ? SASL_OK : SASL_FAIL;
}

static void sasl_mutex_free_cb(void *m)
{
    pthread_mutex_destroy(m);
    free(m);
}

int sasl_setup(const char *config_dir, char *err, size_t errlen)
{
    if (config_dir && !(sasl_config_dir = strdup(config_dir))) {
        snprintf(err, errlen, "SASL: out of memory");
        return -1;
    }
    if (!sasl_config_dir)
        sasl_callbacks[1].id = SASL_CB_LIST_END;
    sasl_set_mutex(sasl_mutex_new, sasl_mutex_lock_cb, sasl_mutex_unlock_cb, sasl_mutex_free_cb);
    /* sendmail's application name: /etc/sasl2/Sendmail.conf is read as it is */
    int r = sasl_server_init(sasl_callbacks, "Sendmail");
    if (r != SASL_OK) {
        snprintf(err, errlen, "SASL: cannot initialise the library: %s",
                 sasl_errstring(r, NULL, NULL));
        free(sasl_config_dir);
        sasl_config_dir = NULL;
        return -1;
    }
    return 0;
}

void sasl_teardown(void)
{
    sasl_server_done();
    free(sasl_config_dir);
    sasl_config_dir = NULL;
}

/* A connection with the properties of `set`; NULL with the reason in `err`. */
static sasl_conn_t *sasl_conn_open(const struct sasl_auth_settings *set, char *err, size_t errlen)
{
    sasl_conn_t *conn;
    int r = sasl_server_new("smtp", set->hostname, NULL,
                            set->local_ipport && set->local_ipport[0] ? set->local_ipport : NULL,
                            set->remote_ipport && set->remote_ipport[0] ? set->remote_ipport : NULL,
                            NULL, 0, &conn);
    if (r != SASL_OK) {
        snprintf(err, errlen, "%s (%d)", sasl_errstring(r, NULL, NULL), r);
        return NULL;
    }
    /* TLS is the security layer: sendmail's 'p' forbids plaintext mechanisms only outside
     * it. ringmail offers no SASL security layer of its own (max_ssf 0). */
    sasl_security_properties_t props = {
        .min_ssf = 0,
        .max_ssf = 0,
        .maxbufsize = 0,
        .security_flags = set->tls_bits ? set->flags & ~SASL_SEC_NOPLAINTEXT : set->flags,
    };
    sasl_ssf_t ext = set->tls_bits;
    if (sasl_setprop(conn, SASL_SEC_PROPS, &props) != SASL_OK ||
        sasl_setprop(conn, SASL_SSF_EXTERNAL, &ext) != SASL_OK) {
        snprintf(err, errlen, "%s", sasl_errdetail(conn));
        sasl_dispose(&conn);
        return NULL;
    }
    return conn;
}

int sasl_offer(const char *const *want, unsigned flags, bool tls, char *out, size_t outlen,
               char *err, size_t errlen)
{
    struct sasl_auth_settings set = {.hostname = "localhost", .flags = flags, .tls_bits = tls};
    out[0] = '\0';
    sasl_conn_t *conn = sasl_conn_open(&set, err, errlen);
    if (!conn)
        return -1;
    const char *list;
    unsigned len;
    int count;
    if (sasl_listmech(conn, NULL, " ", " ", " ", &list, &len, &count) != SASL_OK)
        list = " ";
    size_t used = 0;
    for (size_t i = 0; want && want[i]; i++) {
        char key[64];
        size_t n = strlen(want[i]);
        if (n + 3 > sizeof(key))
            continue;
        snprintf(key, sizeof(key), " %s ", want[i]);
        for (size_t k = 1; k <= n; k++)
            if (key[k] >= 'a' && key[k] <= 'z')
                key[k] = (char)(key[k] - 'a' + 'A');
        if (!strstr(list, key) || used + n + 2 > outlen)
            continue;
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? " " : "", key + 1);
        out[--used] = '\0'; /* the key's trailing space */
    }
    sasl_dispose(&conn);
    return 0;
}

/* --- the helper threads --- */

/* Under the lock. */
static void sasl_box_put(struct sasl_box *b, struct sasl_auth *a)
{
    a->next = NULL;
    if (b->tail)
        b->tail->next = a;
    else
        b->head = a;
    b->tail = a;
}

static void sasl_run_step(struct sasl_auth *a)
{
    const char *out = NULL;
    unsigned outlen = 0;
    int r;
    a->status = SASL_STATUS_TEMPFAIL;
    a->error[0] = a->authid[0] = '\0';
    free(a->out);
    a->out = NULL;
    a->outlen = 0;
    if (a->mech[0] && a->conn) /* a new start: the old exchange is over */
        sasl_dispose(&a->conn);
    if (!a->conn && !(a->conn = sasl_conn_open(&a->set, a->error, sizeof(a->error))))
        return;
    if (a->mech[0])
        r = sasl_server_start(a->conn, a->mech, a->has_in ? (const char *)a->in : NULL,
                              (unsigned)a->inlen, &out, &outlen);
    else
        r = sasl_server_step(a->conn, (const char *)a->in, (unsigned)a->inlen, &out, &outlen);
    if (r == SASL_OK || r == SASL_CONTINUE) {
        if (outlen && !(a->out = malloc(outlen))) {
            snprintf(a->error, sizeof(a->error), "out of memory");
            return;
        }
        if (outlen)
            memcpy(a->out, out, outlen);
        a->outlen = outlen;
    }
    if (r == SASL_CONTINUE) {
        a->status = SASL_STATUS_CONTINUE;
    } else if (r == SASL_OK) {
        const void *user = NULL, *ssf = NULL;
        sasl_getprop(a->conn, SASL_USERNAME, &user);
        sasl_getprop(a->conn, SASL_SSF, &ssf);
        snprintf(a->authid, sizeof(a->authid), "%s", user ? (const char *)user : "");
        a->ssf = ssf ? *(const sasl_ssf_t *)ssf : 0;
        a->status = SASL_STATUS_OK;
    } else {
        /* sendmail's words: "<errstring> (<code>) <detail>"; fail2ban's sendmail-auth filter
         * reads them up to the next comma, so none may come from the detail */
        snprintf(a->error, sizeof(a->error), "%s (%d) %s", sasl_errstring(r, NULL, NULL), r,
                 sasl_errdetail(a->conn));
        for (char *c = a->error; (c = strchr(c, ','));)
            *c = ';';
        a->status = r == SASL_TRYAGAIN || r == SASL_NOMEM || r == SASL_UNAVAIL
                        ? SASL_STATUS_TEMPFAIL
                        : SASL_STATUS_FAIL;
    }
}

static void *sasl_thread(void *arg)
{
    struct sasl_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->queue.head && !p->stop)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        struct sasl_auth *a = p->queue.head;
        p->queue.head = a->next;
        if (!p->queue.head)
            p->queue.tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        sasl_run_step(a);
        /* the response may hold a password: gone as soon as it is used */
        if (a->in) {
            memset(a->in, 0, a->inlen);
            free(a->in);
            a->in = NULL;
        }
        pthread_mutex_lock(&p->lock);
        sasl_box_put(&p->boxes[a->worker], a);
        /* once stopping, the workers are gone: sasl_pool_free takes what is boxed */
        if (!p->stop) {
            pthread_mutex_unlock(&p->lock);
            engine_post(p->engine, SASL_ENGINE_MSG);
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct sasl_pool *sasl_pool_new(struct engine *e, unsigned workers)
{
    struct sasl_pool *p = calloc(1, sizeof(*p));
    if (!p || !(p->boxes = calloc(workers, sizeof(*p->boxes)))) {
        free(p);
        return NULL;
    }
    p->engine = e;
    p->workers = workers;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    for (unsigned i = 0; i < SASL_POOL_THREADS; i++) {
        if (pthread_create(&p->threads[i], NULL, sasl_thread, p) != 0)
            break;
        p->n_threads++;
    }
    if (!p->n_threads) {
        sasl_pool_free(p);
        return NULL;
    }
    return p;
}

static void sasl_auth_release(struct sasl_auth *a)
{
    if (a->conn)
        sasl_dispose(&a->conn);
    if (a->in)
        memset(a->in, 0, a->inlen);
    free(a->in);
    free(a->out);
    free(a->strings);
    free(a);
}

void sasl_pool_free(struct sasl_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    /* every worker has ended: whatever is left was its sessions', all gone */
    for (struct sasl_auth *a = p->queue.head, *next; a; a = next) {
        next = a->next;
        sasl_auth_release(a);
    }
    for (unsigned w = 0; w < p->workers; w++)
        for (struct sasl_auth *a = p->boxes[w].head, *next; a; a = next) {
            next = a->next;
            sasl_auth_release(a);
        }
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->boxes);
    free(p);
}

void sasl_pool_on_message(struct sasl_pool *p, unsigned worker)
{
    if (!p || worker >= p->workers)
        return;
    pthread_mutex_lock(&p->lock);
    struct sasl_auth *a = p->boxes[worker].head;
    p->boxes[worker].head = p->boxes[worker].tail = NULL;
    pthread_mutex_unlock(&p->lock);
    for (struct sasl_auth *next; a; a = next) {
        next = a->next;
        a->busy = false;
        if (a->freed) {
            sasl_auth_release(a);
            continue;
        }
        struct sasl_result r = {
            .status = a->status,
            .out = a->out,
            .outlen = a->outlen,
            .authid = a->authid,
            .ssf = a->ssf,
            .error = a->error[0] ? a->error : "temporary failure",
        };
        a->done(a->arg, &r);
    }
}

struct sasl_auth *sasl_auth_new(struct sasl_pool *p, unsigned worker,
                                const struct sasl_auth_settings *set,
                                void (*done)(void *arg, const struct sasl_result *r), void *arg)
{
    if (!p || worker >= p->workers)
        return NULL;
    struct sasl_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    size_t hl = strlen(set->hostname) + 1, ll = strlen(set->local_ipport) + 1,
           rl = strlen(set->remote_ipport) + 1;
    if (!(a->strings = malloc(hl + ll + rl))) {
        free(a);
        return NULL;
    }
    a->set = *set;
    a->set.hostname = memcpy(a->strings, set->hostname, hl);
    a->set.local_ipport = memcpy(a->strings + hl, set->local_ipport, ll);
    a->set.remote_ipport = memcpy(a->strings + hl + ll, set->remote_ipport, rl);
    a->pool = p;
    a->worker = worker;
    a->done = done;
    a->arg = arg;
    return a;
}

void sasl_auth_step(struct sasl_auth *a, const char *mech, const unsigned char *resp, size_t len,
                    bool has_resp)
{
    struct sasl_pool *p = a->pool;
    unsigned char *in = has_resp ? malloc(len + 1) : NULL;
    if (in) {
        memcpy(in, resp, len);
        in[len] = '\0';
    }
    a->busy = true;
    pthread_mutex_lock(&p->lock);
    if ((has_resp && !in) || p->queued >= SASL_POOL_QUEUE) {
        /* answered as a step would be, from the loop: the caller never waits in vain */
        a->status = SASL_STATUS_TEMPFAIL;
        snprintf(a->error, sizeof(a->error), "%s",
                 in || !has_resp ? "too many AUTH exchanges waiting" : "out of memory");
        sasl_box_put(&p->boxes[a->worker], a);
        pthread_mutex_unlock(&p->lock);
        free(in);
        engine_post(p->engine, SASL_ENGINE_MSG);
        return;
    }
    snprintf(a->mech, sizeof(a->mech), "%s", mech ? mech : "");
    a->in = in;
    a->inlen = len;
    a->has_in = has_resp;
    sasl_box_put(&p->queue, a);
    p->queued++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void sasl_auth_free(struct sasl_auth *a)
{
    if (!a)
        return;
    if (a->busy) { /* released when its step comes back (sasl_pool_on_message) */
        a->freed = true;
        return;
    }
    sasl_auth_release(a);
}
