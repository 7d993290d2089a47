/*
 * compat/mc_translate.h — sendmail.mc to ringmail YAML, with the migration report.
 *
 * Reads the .mc with the m4 subset of mc_m4.h (no m4, no sendmail at run time) and gives
 * every sendmail construct its meaning: today's keys where ringmail has them, keys kept
 * for later (printed commented out unless future_keys) where it will, and a report entry
 * for everything, with file and line. docs/migrating.md has the table of constructs.
 * Files the .mc names (local-host-names, relay-domains, includes) are read under
 * `root` when it is set, so a copy of another machine's /etc can be translated.
 */
#ifndef RINGMAIL_COMPAT_MC_TRANSLATE_H
#define RINGMAIL_COMPAT_MC_TRANSLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "compat/mc_report.h"
#include "util/buf.h"

struct mc_options {
    const char *const *include_dirs;
    size_t n_include_dirs;
    const char *root; /* NULL = the real file system */
    bool future_keys; /* print keys the daemon does not read yet as live keys */
};

enum mc_status {
    MC_STATUS_OK,     /* everything translated or harmlessly ignored */
    MC_STATUS_PERSON, /* YAML written; some entries need a person */
    MC_STATUS_ERROR   /* malformed input: no YAML */
};

struct mc_result {
    struct buf yaml;
    struct mc_report report;
    enum mc_status status;
};

/* Translates a .mc file, or a .mc held in memory (`name` labels it in the report).
 * Fills `res` (zero it first; free with mc_result_free) and returns res->status. */
enum mc_status mc_translate_file(const char *path, const struct mc_options *o,
                                 struct mc_result *res);
enum mc_status mc_translate_mem(const char *name, const char *data, size_t len,
                                const struct mc_options *o, struct mc_result *res);
void mc_result_free(struct mc_result *res);

#endif
