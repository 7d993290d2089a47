/*
 * compat/mc2yaml_main.c — ringmail-mc2yaml: translate a sendmail.mc into ringmail YAML.
 *
 *   ringmail-mc2yaml sendmail.mc [-o out.yaml] [-I DIR]... [--root DIR] [--future-keys]
 *                    [--strict]
 *
 * The YAML goes to stdout (or -o), the migration report to stderr. Exit status (sysexits):
 * 0 nothing needs a person; 1 the YAML is written but some entries need a person;
 * 65 (EX_DATAERR) malformed input, no YAML written; 64 (EX_USAGE) bad command line;
 * 73 (EX_CANTCREAT) the output file could not be written; with --strict, entries that
 * need a person exit 3 instead of 1 and no YAML is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "compat/mc_translate.h"

#define EXIT_PERSON      1
#define EXIT_STRICT      3
#define MAX_INCLUDE_DIRS 64

static int usage(void)
{
    fprintf(stderr, "usage: ringmail-mc2yaml sendmail.mc [-o out.yaml] [-I DIR]... "
                    "[--root DIR] [--future-keys] [--strict]\n");
    return EX_USAGE;
}

static int write_out(const char *path, const struct buf *yaml)
{
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f) {
        perror(path);
        return EX_CANTCREAT;
    }
    size_t n = fwrite(yaml->data ? yaml->data : "", 1, yaml->len, f);
    int bad = n != yaml->len || ferror(f);
    /* A write error may only show when the buffers are flushed: check that too. */
    if (!path && fflush(f) != 0)
        bad = 1;
    else if (path && fclose(f) != 0)
        bad = 1;
    if (bad) {
        perror(path ? path : "stdout");
        return EX_CANTCREAT;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dirs[MAX_INCLUDE_DIRS];
    struct mc_options o = {.include_dirs = dirs};
    const char *in = NULL, *out = NULL;
    bool strict = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-o") || !strcmp(a, "-I") || !strcmp(a, "--root")) && i + 1 >= argc)
            return usage();
        if (!strcmp(a, "-o"))
            out = argv[++i];
        else if (!strcmp(a, "-I") && o.n_include_dirs < MAX_INCLUDE_DIRS)
            dirs[o.n_include_dirs++] = argv[++i];
        else if (!strncmp(a, "-I", 2) && a[2] && o.n_include_dirs < MAX_INCLUDE_DIRS)
            dirs[o.n_include_dirs++] = a + 2;
        else if (!strcmp(a, "--root"))
            o.root = argv[++i];
        else if (!strcmp(a, "--future-keys"))
            o.future_keys = true;
        else if (!strcmp(a, "--strict"))
            strict = true;
        else if (a[0] == '-' || in)
            return usage();
        else
            in = a;
    }
    if (!in)
        return usage();
    struct mc_result res = {0};
    enum mc_status st = mc_translate_file(in, &o, &res);
    struct buf report;
    buf_init(&report, 0);
    mc_report_print(&res.report, &report);
    fwrite(report.data, 1, report.len, stderr);
    buf_free(&report);
    int rc = st == MC_STATUS_ERROR              ? EX_DATAERR
             : st == MC_STATUS_PERSON && strict ? EXIT_STRICT
             : st == MC_STATUS_PERSON           ? EXIT_PERSON
                                                : 0;
    if (rc != EX_DATAERR && rc != EXIT_STRICT) {
        int w = write_out(out, &res.yaml);
        if (w)
            rc = w;
    }
    mc_result_free(&res);
    return rc;
}
