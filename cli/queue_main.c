/*
 * cli/queue_main.c — ringmail-queue: the queue tools in one program (docs/command-line.md,
 * "ringmail-queue").
 *
 *   ringmail-queue [-C config] hold|release|delete|requeue TARGET...
 *   ringmail-queue [-C config] flush [FILTER...]
 *   ringmail-queue [-C config] list [--json]
 *   ringmail-queue [-C config] shape [-s] [-p] [-m N] [-b N] [-t N] [-l] [-w N] [QUEUE...]
 *   ringmail-queue [-C config] hoststat | purgestat
 *
 * TARGET is a queue id, ALL, or a filter (R<recipient>, S<sender>, I<queue id>
 * substrings, '!' negates); "-" reads targets from standard input, one per line, as
 * postsuper does. QUEUE (Postfix's queue names) narrows shape to held messages (hold),
 * deferred ones (deferred: tried before) or new ones (incoming, active: never tried);
 * without one, every message that is not held. Exit status: sysexits, EX_USAGE for a bad
 * command line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_config.h"
#include "cli/mailq.h"
#include "cli/qshape.h"
#include "cli/queuectl.h"
#include "cli/spool_read.h"

#define PROG "ringmail-queue"

static int usage(void)
{
    fputs("usage: " PROG " [-C config] hold|release|delete|requeue TARGET...\n"
          "       " PROG " [-C config] flush [FILTER...]\n"
          "       " PROG " [-C config] list [--json]\n"
          "       " PROG " [-C config] shape [-s] [-p] [-m N] [-b N] [-t N] [-l] [-w N] "
          "[hold|deferred|incoming|active...]\n"
          "       " PROG " [-C config] hoststat | purgestat\n"
          "TARGET: a queue id, ALL, R<recipient>, S<sender>, I<queue id> ('!' negates a "
          "filter), or - to read them from standard input\n",
          stderr);
    return EX_USAGE;
}

struct targets {
    char **v;
    size_t n, cap;
};

static int targets_add(struct targets *t, const char *s)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        char **v = realloc(t->v, cap * sizeof(*v));
        if (!v)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    if (!(t->v[t->n] = strdup(s)))
        return -1;
    t->n++;
    return 0;
}

static void targets_free(struct targets *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
}

/* postsuper's "-": one target per line; blank lines skipped, surrounding blanks trimmed. */
static int targets_read_stdin(struct targets *t)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int r = 0;
    while (r == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
        char *s = line, *e = line + n;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *e = '\0';
        if (*s)
            r = targets_add(t, s);
    }
    free(line);
    return r;
}

static int run_change(const struct config *cfg, enum queuectl_op op, int argc, char **argv)
{
    if (argc == 0)
        return usage();
    struct targets t = {0};
    int r = 0;
    bool stdin_read = false;
    for (int i = 0; r == 0 && i < argc; i++) {
        if (!strcmp(argv[i], "-")) {
            if (!stdin_read)
                r = targets_read_stdin(&t);
            stdin_read = true;
        } else {
            r = targets_add(&t, argv[i]);
        }
    }
    int rc;
    if (r < 0) {
        fputs(PROG ": out of memory\n", stderr);
        rc = EX_OSERR;
    } else {
        rc = queuectl_change(cfg, PROG, op, (const char *const *)t.v, t.n, stdout, stderr);
    }
    targets_free(&t);
    return rc;
}

enum shape_queue { SHAPE_HOLD = 1, SHAPE_DEFERRED = 2, SHAPE_NEW = 4 };

static bool shape_selected(const struct envelope *e, unsigned queues)
{
    if (e->next_attempt == ENVELOPE_NEXT_HELD)
        return queues & SHAPE_HOLD;
    return queues & (e->attempts ? SHAPE_DEFERRED : SHAPE_NEW);
}

static int run_shape(const struct config *cfg, int argc, char **argv)
{
    struct qshape_options o;
    qshape_defaults(&o);
    int used;
    if (qshape_parse_args(argc, argv, &o, &used, stderr) < 0)
        return usage();
    unsigned queues = 0;
    for (int i = used; i < argc; i++) {
        if (!strcmp(argv[i], "hold"))
            queues |= SHAPE_HOLD;
        else if (!strcmp(argv[i], "deferred"))
            queues |= SHAPE_DEFERRED;
        else if (!strcmp(argv[i], "incoming") || !strcmp(argv[i], "active"))
            queues |= SHAPE_NEW;
        else
            return usage();
    }
    if (!queues)
        queues = SHAPE_DEFERRED | SHAPE_NEW;
    if (!spool_read_allowed(cfg->run_as, geteuid())) {
        fputs("You are not permitted to see the queue\n", stderr);
        return EX_NOPERM;
    }
    struct spool_read_list list;
    char why[512];
    if (spool_read_all(cfg->spool, &list, why, sizeof(why)) < 0 && errno != ENOENT) {
        fprintf(stderr, PROG ": cannot read the queue: %s\n", why);
        return errno == EACCES ? EX_NOPERM : EX_IOERR;
    }
    const struct envelope **msgs = calloc(list.n ? list.n : 1, sizeof(*msgs));
    int rc = EX_OK;
    if (!msgs) {
        rc = EX_OSERR;
    } else {
        size_t n = 0;
        for (size_t i = 0; i < list.n; i++)
            if (shape_selected(&list.msgs[i].env, queues))
                msgs[n++] = &list.msgs[i].env;
        if (qshape_print(stdout, &o, msgs, n, time(NULL)) < 0)
            rc = EX_OSERR;
    }
    if (rc == EX_OSERR)
        fputs(PROG ": out of memory\n", stderr);
    free(msgs);
    spool_read_list_free(&list);
    return rc;
}

static int run(const struct config *cfg, int argc, char **argv)
{
    const char *cmd = argv[0];
    static const struct {
        const char *name;
        enum queuectl_op op;
    } changes[] = {{"hold", QUEUECTL_HOLD},
                   {"release", QUEUECTL_RELEASE},
                   {"delete", QUEUECTL_DELETE},
                   {"requeue", QUEUECTL_REQUEUE}};
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
        if (!strcmp(cmd, changes[i].name))
            return run_change(cfg, changes[i].op, argc - 1, argv + 1);
    if (!strcmp(cmd, "flush"))
        return queuectl_flush_filters(cfg, PROG, (const char *const *)argv + 1, (size_t)argc - 1,
                                      false, stdout, stderr);
    if (!strcmp(cmd, "list")) {
        bool json = argc == 2 && !strcmp(argv[1], "--json");
        if (argc > 2 || (argc == 2 && !json))
            return usage();
        return mailq_main(cfg, json, NULL, 0, NULL, stdout, stderr);
    }
    if (!strcmp(cmd, "shape"))
        return run_shape(cfg, argc - 1, argv + 1);
    if ((!strcmp(cmd, "hoststat") || !strcmp(cmd, "purgestat")) && argc == 1)
        return queuectl_hoststat(cfg, cmd[0] == 'p', stdout, stderr);
    return usage();
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int i = 1;
    if (i < argc && !strncmp(argv[i], "-C", 2)) {
        config = argv[i][2] ? argv[i] + 2 : i + 1 < argc ? argv[++i] : NULL;
        if (!config)
            return usage();
        i++;
    }
    if (i >= argc)
        return usage();
    struct config *cfg = cli_config_load(config, false, PROG, stderr);
    if (!cfg)
        return EX_CONFIG;
    int rc = run(cfg, argc - i, argv + i);
    if (fflush(stdout) != 0 && rc == EX_OK) {
        perror(PROG ": stdout");
        rc = EX_IOERR;
    }
    config_free(cfg);
    return rc;
}
