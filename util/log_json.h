/*
 * util/log_json.h — one log line as one JSON object (log.format: json, docs/logs.md).
 *
 * Pure conversion, no I/O: util/log.c calls it for every line when the format is JSON.
 * The object carries, in this order: "time" (RFC 3339, local time with its offset and
 * milliseconds), "host" (when given), "ident", "pid", "level" ("debug", "info", "warning",
 * "error"), then what the line says:
 *   - a line that starts with a queue id and ": " gets "qid". A queue id here is 12 to 20
 *     characters of [0-9A-Za-z] that are not all lower-case letters (ringmail's are 16,
 *     sendmail's 14): a word such as "listening: " is no id;
 *   - when what follows is sendmail's "key=value, key=value, ..." every key becomes a
 *     member whose value is the text, as a string. A ", " inside <...>, "...", [...] or
 *     (...) does not end a value (relay=host [192.0.2.1] (may be forged), ctladdr=<a@b>
 *     (1000/1000)); "stat=" and "reject=" are last in sendmail's lines and take the rest of
 *     the line (a reply's text may hold anything). A line where one part is no key=value,
 *     where a key repeats or names one of the members above, or with more than
 *     LOG_JSON_FIELDS keys gets no such members;
 *   - "msg": always the whole line as logged in text (without the level's "warning: "),
 *     so nothing is lost and a consumer can fall back on it.
 *
 * Escaping: '"', '\' and every byte below 0x20 and 0x7f are escaped (\n, \t, \u001b, ...);
 * well-formed UTF-8 is copied; every byte that is not part of a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) becomes U+FFFD, so
 * the output is always valid UTF-8 and valid JSON, whatever bytes a client put in the line.
 *
 * When the object does not fit in `cap` bytes the key=value members are left out, then the
 * message is cut (at a character, never inside an escape), and "truncated": true is added:
 * the result is still one valid object. Thread-safe; allocates nothing.
 */
#ifndef RINGMAIL_UTIL_LOG_JSON_H
#define RINGMAIL_UTIL_LOG_JSON_H

#include <stddef.h>
#include <time.h>

/* Room for any line util/log.c writes (2 KiB) with its members, in the worst case. */
#define LOG_JSON_MAX 32768
/* The least `cap` that holds the fixed members with the longest ident and host. */
#define LOG_JSON_MIN    1024
#define LOG_JSON_FIELDS 32

struct log_json_meta {
    struct timespec when; /* CLOCK_REALTIME */
    const char *host;     /* NULL: no "host" member */
    const char *ident;    /* at most 64 bytes are used */
    long pid;
    const char *level; /* "debug", "info", "warning", "error" */
};

/* Writes the object (no newline) and a NUL into out[cap]; returns its length, or 0 (and an
 * empty string when cap > 0) when cap < LOG_JSON_MIN. */
size_t log_json_format(char *out, size_t cap, const struct log_json_meta *m, const char *line);

#endif
