/*
 * cli/stats_main.c — ringmail-stats: sendmail's mailstats(8) for ringmail's statistics file
 * (queue/mailstats.h, docs/statistics.md, man/ringmail-stats.8).
 *
 *   ringmail-stats [-C config] [-c] [-f file] [-o] [-p] [-P]
 *
 * -C names the configuration whose statistics_file is read (cli/cli_config.h finds it as the
 * other programs do); -f names the file itself. -o leaves out the mailer names; -P prints the
 * program-readable form; -p does too and resets the counters, each taken and zeroed
 * atomically while the daemon counts, so no event is lost or counted twice (sendmail's -p
 * truncates the file instead, which would pull the pages from under ringmaild's mapping).
 * -c (sendmail's submit.cf) is accepted and changes nothing: ringmail has one configuration.
 * Exit status as mailstats': EX_USAGE, EX_CONFIG for a configuration that does not load,
 * EX_NOINPUT for a file that cannot be opened, EX_OSERR for one that is not a statistics file
 * of this version.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_config.h"
#include "cli/stats_print.h"
#include "queue/mailstats.h"

#define PROG "ringmail-stats"

static int usage(void)
{
    fputs("usage: " PROG " [-C cffile] [-c] [-P] [-f stfile] [-o] [-p]\n", stderr);
    return EX_USAGE;
}

int main(int argc, char **argv)
{
    const char *cfile = NULL, *sfile = NULL;
    bool reset = false;
    struct stats_print_opts o = {.names = true};
    int ch;
    while ((ch = getopt(argc, argv, "cC:f:opP")) != -1) {
        switch (ch) {
        case 'c':
            break;
        case 'C':
            cfile = optarg;
            break;
        case 'f':
            sfile = optarg;
            break;
        case 'o':
            o.names = false;
            break;
        case 'p':
            reset = true;
            o.program = true;
            break;
        case 'P':
            o.program = true;
            break;
        default:
            return usage();
        }
    }
    if (optind != argc)
        return usage();

    struct config *cfg = NULL;
    if (!sfile) {
        if (!(cfg = cli_config_load(cfile, false, PROG, stderr)))
            return EX_CONFIG;
        sfile = cfg->statistics_file;
    }
    char err[1024];
    struct mailstats *s;
    int rc = mailstats_open(sfile, reset ? MAILSTATS_RESET : MAILSTATS_READ, &s, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        config_free(cfg);
        return rc == -EPROTO ? EX_OSERR : EX_NOINPUT;
    }
    struct mailstats_snapshot snap;
    mailstats_snapshot(s, reset, &snap);
    mailstats_close(s);
    config_free(cfg);
    o.now = time(NULL);
    stats_print(stdout, &snap, &o);
    if (fflush(stdout) != 0) {
        fprintf(stderr, PROG ": standard output: %s\n", strerror(errno));
        return EX_IOERR;
    }
    return EX_OK;
}
