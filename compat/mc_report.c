#include "compat/mc_report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat/map_text.h"

static const char *const mc_kind_names[MC_N_KINDS] = {"translated", "kept for later", "ignored",
                                                      "warning",    "needs a person", "error"};

void mc_report_add(struct mc_report *r, struct mc_loc loc, enum mc_kind kind, const char *fmt, ...)
{
    struct buf text;
    va_list ap;
    r->count[kind]++;
    buf_init(&text, 0);
    va_start(ap, fmt);
    int rc = buf_vprintf(&text, fmt, ap);
    va_end(ap);
    if (rc < 0 || map_grow((void **)&r->v, &r->cap, r->n, sizeof(*r->v)) < 0) {
        buf_free(&text);
        return;
    }
    struct mc_report_entry *e = &r->v[r->n];
    *e = (struct mc_report_entry){loc.file ? strdup(loc.file) : NULL, loc.line, kind, text.data};
    if ((loc.file && !e->file) || !e->text) {
        free(e->file);
        buf_free(&text);
        return;
    }
    r->n++;
}

void mc_report_print(const struct mc_report *r, struct buf *out)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct mc_report_entry *e = &r->v[i];
        if (e->file && e->line)
            buf_printf(out, "%s:%u: ", e->file, e->line);
        else if (e->file)
            buf_printf(out, "%s: ", e->file);
        buf_printf(out, "%s: %s\n", mc_kind_names[e->kind], e->text);
    }
    buf_printf(out,
               "summary: %zu translated, %zu kept for later (not enforced yet), %zu ignored, %zu "
               "warnings, %zu need a person, %zu errors\n",
               r->count[MC_TRANSLATED], r->count[MC_KEPT], r->count[MC_IGNORED],
               r->count[MC_WARNING], r->count[MC_PERSON], r->count[MC_ERROR]);
}

void mc_report_free(struct mc_report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].file);
        free(r->v[i].text);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}
