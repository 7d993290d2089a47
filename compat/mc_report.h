/*
 * compat/mc_report.h — the migration report of ringmail-mc2yaml: one entry for each
 * construct of the .mc (and of what it includes), in reading order, each with file, line,
 * a kind and a sentence, then a summary line. The kinds and the exit status they lead to
 * are documented in docs/migrating.md.
 */
#ifndef RINGMAIL_COMPAT_MC_REPORT_H
#define RINGMAIL_COMPAT_MC_REPORT_H

#include <stddef.h>

#include "compat/mc_m4.h"
#include "util/buf.h"

enum mc_kind {
    MC_TRANSLATED, /* carried over to a key the daemon enforces */
    MC_KEPT,       /* carried over to a key the daemon accepts but does not enforce yet (and
                      warns about at start-up): counted apart, so that "0 need a person" is
                      never read as "everything works" */
    MC_IGNORED,    /* harmless to drop; the entry says why */
    MC_WARNING,    /* carried over as sendmail would, but probably not what was meant */
    MC_PERSON,     /* not carried over: someone must decide */
    MC_ERROR,      /* malformed input: no YAML is written */
    MC_N_KINDS
};

struct mc_report_entry {
    char *file; /* NULL: the translation as a whole */
    unsigned line;
    enum mc_kind kind;
    char *text;
};

struct mc_report {
    struct mc_report_entry *v;
    size_t n, cap;
    size_t count[MC_N_KINDS];
};

/* Adds an entry (loc.file copied; line 0 = no line). Out of memory drops the entry but
 * still counts it, so the exit status stays right. */
void mc_report_add(struct mc_report *r, struct mc_loc loc, enum mc_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "file:line: kind: text" a line, then "summary: ...". */
void mc_report_print(const struct mc_report *r, struct buf *out);
void mc_report_free(struct mc_report *r);

#endif
