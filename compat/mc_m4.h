/*
 * compat/mc_m4.h — the subset of m4 that sendmail .mc files use, read without m4.
 *
 * Handles `nested' quotes (and changequote to other single characters), dnl, # comments,
 * divert, define/undefine with $1..$9, $#, $*, $@ in bodies, ifdef, ifelse, include and
 * sinclude (relative to the including file, then each -I directory; absolute paths under
 * an optional root, for translating a copy of another machine's /etc). sendmail's own
 * macros (FEATURE, DAEMON_OPTIONS, MAILER, ...) are not expanded: each call is handed to
 * the caller as an event with its arguments (quotes removed, the caller's own macros
 * expanded in them), so the caller gives them their meaning. Output text outside divert(-1)
 * — the raw sendmail.cf lines a .mc may carry — comes as one event a non-blank line.
 *
 * Bounded: include depth, argument nesting and total macro expansion are limited, so any
 * input ends (with an error naming file and line when a limit is hit). Not thread-safe; one
 * reader per translation.
 */
#ifndef RINGMAIL_COMPAT_MC_M4_H
#define RINGMAIL_COMPAT_MC_M4_H

#include <stdbool.h>
#include <stddef.h>

struct mc_m4;

struct mc_loc {
    const char *file; /* valid for the reader's lifetime */
    unsigned line;
};

enum mc_event_kind {
    MC_CALL,     /* name(args...) of a macro the reader does not define itself */
    MC_TEXT,     /* a non-blank output line, in args[0] */
    MC_DEFINE,   /* define(name, value): args[0] = value ("" when absent) */
    MC_UNDEFINE, /* undefine(name) */
    MC_INCLUDE,  /* include/sinclude(name) before it is opened; args[0] = the resolved path
                    or the name when it is not found; `missing` says which */
};

struct mc_event {
    enum mc_event_kind kind;
    struct mc_loc loc;
    const char *name; /* the macro, or "include"/"sinclude" */
    char **args;
    size_t nargs;
    bool has_parens; /* MC_CALL: name was followed by '(' */
    bool missing;    /* MC_INCLUDE: no such file */
};

/* What the caller does with an event: go on, skip this include (MC_INCLUDE only: its
 * meaning is built in), or stop (the caller holds the error). */
enum mc_verdict { MC_GO_ON, MC_SKIP, MC_STOP };
typedef enum mc_verdict (*mc_event_fn)(void *ctx, struct mc_m4 *m, const struct mc_event *ev);

struct mc_m4_options {
    const char *const *include_dirs; /* -I directories, searched after the including file's */
    size_t n_include_dirs;
    const char *root; /* prefix for absolute paths, or NULL */
    /* macros defined before the .mc is read: name, value, name, value, ..., NULL (or NULL) */
    const char *const *predefined;
    /* sendmail macros that take effect without parentheses (LOCAL_CONFIG, ...). */
    bool (*is_bare_macro)(const char *name);
    mc_event_fn on_event;
    void *ctx;
};

/* Where and why reading failed. */
struct mc_m4_error {
    char file[256];
    unsigned line;
    char msg[512]; /* empty when on_event stopped the reading */
};

/* Reads a .mc from a file or from memory (`name` labels it in locations). 0 on success,
 * -1 with *err filled on malformed input or when on_event stopped. */
int mc_m4_read_file(const char *path, const struct mc_m4_options *o, struct mc_m4_error *err);
int mc_m4_read_mem(const char *name, const char *data, size_t len, const struct mc_m4_options *o,
                   struct mc_m4_error *err);

/* From an event handler: define a macro as the .mc could (what OSTYPE/DOMAIN imply). */
int mc_m4_define(struct mc_m4 *m, const char *name, const char *value);
/* From an event handler: m4 text to read next, as if the .mc had it at the current call
 * (what a standard OSTYPE or DOMAIN file contributes). */
int mc_m4_push_text(struct mc_m4 *m, const char *text);
/* `text` as sendmail's m4 reads a define's value where cf.m4 uses it: macros of the .mc
 * (without arguments) replaced by their values, again inside those, and one level of
 * quotes removed. A heap string (NULL when out of memory); expansion is bounded. */
char *mc_m4_expand_value(const struct mc_m4 *m, const char *text);
/* Is the macro defined (by the .mc or with mc_m4_define)? */
bool mc_m4_is_defined(const struct mc_m4 *m, const char *name);
/* From an event handler: '#' no longer starts a comment, as after cf.m4's changecom():
 * macros on a '#' line of the .mc are expanded from then on. */
void mc_m4_no_comments(struct mc_m4 *m);

#endif
