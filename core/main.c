/*
 * ringmaild — the daemon's command line.
 *
 *   ringmaild [--config FILE | --builtin-config] [--foreground [--syslog]]   run
 *   ringmaild --check-config [--config FILE]   validate, print the effective config, exit
 *   ringmaild --tls-info [--config FILE]       the TLS server context: providers, groups, certs
 *   ringmaild --version | --help
 *
 * Without --config the file is found as the command-line programs find it (config_find():
 * $RINGMAIL_CONFIG, else /etc/ringmail/ringmail.yaml when it exists, else the built-in
 * default); --builtin-config takes the built-in default whatever the machine has, so
 * ./run.sh keeps its local defaults where ringmail is installed too.
 *
 * Exit codes are sysexits(3): EX_USAGE for a bad command line, EX_CONFIG for a bad
 * configuration, EX_OSERR and friends for start-up failures.
 */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/config.h"
#include "core/parent.h"
#include "core/summary.h"
#include "core/tlsconf.h"
#include "core/version.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ringmaild [--config FILE | --builtin-config] [--foreground [--syslog]]\n"
                 "                 [--queue-interval DURATION]\n"
                 "       ringmaild --check-config [--config FILE | --builtin-config]\n"
                 "       ringmaild --tls-info [--config FILE | --builtin-config]\n"
                 "       ringmaild --version\n"
                 "\n"
                 "  -c, --config FILE   YAML configuration (default: $" CONFIG_ENV ", else\n"
                 "                      " RINGMAIL_CONFIG_FILE " when it exists, else the\n"
                 "                      built-in default)\n"
                 "  -b, --builtin-config\n"
                 "                      the built-in default (loopback port 2525, spool in\n"
                 "                      ./state/spool) whatever $" CONFIG_ENV " and the installed\n"
                 "                      file say; ./run.sh without arguments uses it\n"
                 "  -f, --foreground    stay attached and log to stderr instead of syslog\n"
                 "  -s, --syslog        with --foreground, log to syslog instead of stderr (under\n"
                 "                      systemd: facility mail and log.ident reach the journal)\n"
                 "  -q, --queue-interval DURATION\n"
                 "                      queue.interval whatever the file says (sendmail's -q30m)\n"
                 "  -n, --check-config  validate the configuration, print it and exit\n"
                 "  -T, --tls-info      load the TLS certificates and settings, print the server\n"
                 "                      context (providers, groups, certificates) and exit\n"
                 "  -V, --version       print the version and exit\n");
}

/* The configuration and one server context built from it (NULL: no certificates). EX_OK,
 * or EX_CONFIG after saying why: a key that does not match its certificate is a
 * configuration error like any other. `demo`: make the built-in default's demo
 * certificates (a mere check does not). */
static int load(const char *path, bool demo, struct config **cfg, struct tls_ctx ***ctxs)
{
    char err[1024];
    *ctxs = NULL;
    *cfg = config_load(path, NULL, err, sizeof(err));
    if (!*cfg) {
        fprintf(stderr, "ringmaild: %s\n", err);
        return EX_CONFIG;
    }
    (*cfg)->tls.demo_certs &= demo;
    if (tlsconf_server(*cfg, 1, NULL, NULL, ctxs, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringmaild: %s: %s\n", (*cfg)->source, err);
        return EX_CONFIG;
    }
    return EX_OK;
}

/* The run_as user must exist for a start as root to work: refused when checking as root,
 * a warning for anyone else (who would run as themselves). */
static int check_run_as(const struct config *cfg)
{
    if (getpwnam(cfg->run_as))
        return EX_OK;
    bool root = geteuid() == 0;
    fprintf(stderr,
            "ringmaild: %s%s: run_as user '%s' does not exist%s: create it (useradd --system "
            "--no-create-home --shell /usr/sbin/nologin %s) or set run_as\n",
            root ? "" : "warning: ", cfg->source, cfg->run_as,
            root ? "" : " (a start as root would fail)", cfg->run_as);
    return root ? EX_CONFIG : EX_OK;
}

static int check_config(const char *path)
{
    struct config *cfg;
    struct tls_ctx **ctxs;
    int status = load(path, false, &cfg, &ctxs);
    if (status == EX_OK)
        status = check_run_as(cfg);
    if (status == EX_OK) {
        for (size_t i = 0; i < cfg->n_warnings; i++)
            fprintf(stderr, "ringmaild: warning: %s\n", cfg->warnings[i]);
        config_print(cfg, stdout);
        if (ctxs) /* expiry: the same lines as at start-up, on stderr */
            summary_certs(ctxs[0]);
        if (!ctxs)
            printf("# tls.certificates is empty: STARTTLS is not offered%s\n",
                   path ? "" : " (the daemon makes demo certificates on first run)");
    }
    tlsconf_free(ctxs, 1);
    config_free(cfg);
    return status;
}

static int tls_info(const char *path)
{
    struct config *cfg;
    struct tls_ctx **ctxs;
    int status = load(path, true, &cfg, &ctxs);
    if (status == EX_OK && !ctxs) {
        fprintf(stderr, "ringmaild: %s: tls.certificates is empty: STARTTLS is not offered\n",
                cfg->source);
        status = EX_CONFIG;
    } else if (status == EX_OK) {
        tls_ctx_report(ctxs[0], stdout);
    }
    tlsconf_free(ctxs, 1);
    config_free(cfg);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"check-config", no_argument, NULL, 'n'},
        {"version", no_argument, NULL, 'V'},
        {"tls-info", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {"queue-interval", required_argument, NULL, 'q'},
        {"builtin-config", no_argument, NULL, 'b'},
        {"syslog", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    bool foreground = false, check = false, info = false, builtin = false, syslog = false;
    int c;

    while ((c = getopt_long(argc, argv, "bc:fnq:sTVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'b':
            builtin = true;
            break;
        case 'f':
            foreground = true;
            break;
        case 's':
            syslog = true;
            break;
        case 'n':
            check = true;
            break;
        case 'T':
            info = true;
            break;
        case 'q':
            if (config_override_queue_interval(optarg) < 0) {
                fprintf(stderr,
                        "ringmaild: --queue-interval %s: expected a duration like 30m, "
                        "from 1s to 30d\n",
                        optarg);
                return EX_USAGE;
            }
            break;
        case 'V':
            printf("ringmaild %s\n", RINGMAIL_VERSION);
            return EX_OK;
        case 'h':
            usage(stdout);
            return EX_OK;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ringmaild: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    if (builtin && config_path) {
        fprintf(stderr, "ringmaild: --builtin-config and --config exclude each other\n");
        return EX_USAGE;
    }
    if (syslog && !foreground) {
        fprintf(stderr, "ringmaild: --syslog goes with --foreground (detached, the daemon logs "
                        "to syslog anyway)\n");
        return EX_USAGE;
    }
    if (!builtin)
        config_path = config_find(config_path);
    if (check)
        return check_config(config_path);
    if (info)
        return tls_info(config_path);
    return parent_run(config_path, foreground, syslog);
}
