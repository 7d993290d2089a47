/*
 * ringmaild — the daemon's command line.
 *
 *   ringmaild [--config FILE] [--foreground]   run (built-in default without --config)
 *   ringmaild --check-config [--config FILE]   validate, print the effective config, exit
 *   ringmaild --version | --help
 *
 * Exit codes are sysexits(3): EX_USAGE for a bad command line, EX_CONFIG for a bad
 * configuration, EX_OSERR and friends for start-up failures.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ringmaild [--config FILE] [--foreground]\n"
            "       ringmaild --check-config [--config FILE]\n"
            "       ringmaild --version\n"
            "\n"
            "  -c, --config FILE   YAML configuration (default: built-in, loopback port 2525,\n"
            "                      spool in ./state/spool)\n"
            "  -f, --foreground    stay attached and log to stderr instead of syslog\n"
            "  -n, --check-config  validate the configuration, print it and exit\n"
            "  -V, --version       print the version and exit\n");
}

static int check_config(const char *path)
{
    char err[1024];
    struct config *cfg =
        path ? config_load(path, err, sizeof(err)) : config_default(err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "ringmaild: %s\n", err);
        return EX_CONFIG;
    }
    config_print(cfg, stdout);
    config_free(cfg);
    return EX_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
        {"check-config", no_argument, NULL, 'n'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    bool foreground = false, check = false;
    int c;

    while ((c = getopt_long(argc, argv, "c:fnVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 'n':
            check = true;
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
    if (check)
        return check_config(config_path);
    return daemon_run(config_path, foreground);
}
