/*
 * compat/map_text.h — what every sendmail text-map parser shares: reading the file,
 * walking its lines the way makemap and newaliases do, and "file:line: why" errors.
 *
 * Pure helpers: text in, lines out. A map's text is a C string for the parsers, so a NUL
 * byte in it is refused with its line rather than silently cutting the map short. Nothing
 * here is thread-hostile; a reader is owned by one caller.
 */
#ifndef RINGMAIL_COMPAT_MAP_TEXT_H
#define RINGMAIL_COMPAT_MAP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Largest map file read; real ones are far smaller, and a bound keeps a mistaken path
 * (a log file, a device) from eating memory. */
#define MAP_FILE_MAX (64u * 1024 * 1024)

struct map_reader {
    const char *file; /* for messages */
    const char *data;
    size_t len, pos;
    unsigned line; /* line of the last character read */
    char *err;
    size_t errlen;
};

void map_reader_init(struct map_reader *r, const char *file, const char *data, size_t len,
                     char *err, size_t errlen);
/* The next logical line into `line` (NUL-terminated, without its newline) and its first
 * physical line number into *lineno. Blank lines and lines starting with '#' are skipped.
 * With `continuation`, following lines that start with a space or tab are joined on (as
 * newaliases does). 1 = a line, 0 = end of text, -1 = error (NUL byte) in r->err. */
int map_next_line(struct map_reader *r, bool continuation, struct buf *line, unsigned *lineno);
/* Called for each logical line (map_next_line); 0 to go on, -1 after map_fail(). */
typedef int (*map_line_fn)(void *ctx, struct map_reader *r, char *line, unsigned lineno);
/* Runs `fn` over every logical line of `text`; 0, or -1 with "file:line: why" in err. */
int map_each_line(const char *file, const char *text, size_t len, bool continuation, char *err,
                  size_t errlen, map_line_fn fn, void *ctx);
/* Writes "file:line: message" into r->err; returns -1 so callers can `return map_fail(...)`. */
int map_fail(struct map_reader *r, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Splits a line in place into its first word and the rest (leading and trailing space
 * trimmed; "" when there is none). */
void map_split(char *line, char **key, char **value);
/* A lower-cased copy (keys are case-insensitive in every sendmail map); NULL when out of
 * memory. */
char *map_strdup_lower(const char *s);
/* Parses an SMTP error as sendmail writes it after ERROR: or error:, in any of the forms
 * "550 text", "5.7.1:550 text", "550 5.7.1 text", with or without surrounding double
 * quotes. The code must be 4xx or 5xx. Pieces are copied into the caller's strings (dsn ""
 * when absent). 0, or -1 with a reason in *why. */
int map_parse_error(const char *text, char code[4], char dsn[16], const char **msg,
                    const char **why);

/* A growable array of strings the array owns. */
struct map_strings {
    char **v;
    size_t n, cap;
};
/* Appends a copy of s; -1 when out of memory. */
int map_strings_add(struct map_strings *s, const char *str);
void map_strings_free(struct map_strings *s);
/* Grows an array of `size`-byte elements so that one more fits; -1 when out of memory. */
int map_grow(void **v, size_t *cap, size_t n, size_t size);

#endif
