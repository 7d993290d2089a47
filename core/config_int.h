/*
 * core/config_int.h — private to core/config*.c (and tests/unit/test_config.c).
 *
 * One table of keys (config_keys.c) drives everything: the libyaml pass that checks the
 * document's shape and records where each value stands (config_yaml.c), the libcyaml schema
 * that loads it, the conversion into struct config, config_print(), and the test that
 * docs/config.md names every key. Every scalar is a string to libcyaml; the value parsers
 * below turn it into numbers, so a bad value is reported here, with its position, and
 * never by libcyaml (whose positions are those of the previous event).
 */
#ifndef RINGMAIL_CORE_CONFIG_INT_H
#define RINGMAIL_CORE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

enum config_type {
    CONFIG_SECTION,     /* a mapping of sub-keys (limits, timeouts) */
    CONFIG_MAPS,        /* a list of mappings of sub-keys (listen, tls.certificates); `width`
                           is the size of one item */
    CONFIG_STRING,      /* any non-empty string (run_as, listener names) */
    CONFIG_DOMAIN,      /* LDH labels */
    CONFIG_PATH,        /* stored absolute, relative ones against the config's directory */
    CONFIG_BOOL,        /* true or false, into a bool */
    CONFIG_TLS_VERSION, /* "TLSv1.2" or "TLSv1.3" */
    CONFIG_WORKERS,     /* "auto" or a number */
    CONFIG_UINT,        /* a plain number */
    CONFIG_SIZE,        /* bytes: "10M", "64K", "4096" */
    CONFIG_DURATION,    /* milliseconds: "5m", "1h30m", "500ms", "30" (seconds) */
    CONFIG_FAMILY,      /* "inet" or "inet6": AF_INET / AF_INET6 */
    CONFIG_ADDRESS,     /* an IPv4 or IPv6 literal */
    CONFIG_NETWORK,     /* a netaddr_prefix */
};

enum {
    CONFIG_F_LIST = 1 << 0,     /* a YAML list of the type: pointer at `offset`, count at `count` */
    CONFIG_F_ZERO_OFF = 1 << 1, /* 0 is allowed besides min..max and means "no limit" / "off" */
    CONFIG_F_ONE_ITEM = 1 << 2, /* MAPS (listen): not given = one item of defaults; never none */
    CONFIG_F_KEEP = 1 << 3,     /* checked as its type, stored as written (a char *): a key kept
                                   for later whose type is not text (a bool, a duration) */
    CONFIG_F_OR_ONE = 1 << 4,   /* LIST that may also be written as one value (features.*):
                                   libcyaml skips it and its values come from the libyaml pass */
};

struct config_key {
    const char *name;
    enum config_type type;
    unsigned flags;
    size_t offset;     /* where the value goes: in struct config, or struct config_listener */
    size_t width;      /* of the integer there; MAPS: of one item */
    size_t count;      /* CONFIG_F_LIST: offset of the size_t count */
    uint64_t min, max; /* numbers, sizes (bytes) and durations (ms) */
    const char *dflt;  /* the default, written as in a file; NULL: computed in config.c */
    const struct config_key *sub; /* SECTION, MAPS */
    size_t n_sub;
    /* Accepted but not enforced yet: the issue that will ("delivery", "milters", ...); a
     * value given for it is named in a start-up warning. NULL: enforced. */
    const char *later;
};

extern const struct config_key config_keys[];
extern const size_t config_n_keys;

/* One key's value as libcyaml loaded it; a mapping is an array of these, one per key. */
struct config_raw {
    char *text;   /* scalars */
    char **items; /* lists of scalars */
    unsigned n_items;
    struct config_raw *map;  /* SECTION: n_sub slots */
    struct config_raw *maps; /* MAPS: n_maps * n_sub slots */
    unsigned n_maps;
};

/* Loads `data` into an array of config_n_keys slots (NULL when the document is empty).
 * Call only after config_yaml_scan() accepted it. 0, or -1 with `err`. */
int config_cyaml_load(const char *file, const unsigned char *data, size_t len,
                      struct config_raw **out, char *err, size_t errlen);
void config_cyaml_free(struct config_raw *raw);

/* Where each value given in the file stands. Paths are "limits.recipients", "listen[1].port",
 * "relay_from[0]"; a key given with an empty value is absent (it means "the default"). */
struct config_pos {
    char *path;
    char *text;            /* a scalar's value; NULL for a list or a mapping */
    unsigned line, column; /* 1-based */
};
struct config_doc {
    struct config_pos *pos;
    size_t n;
};

/* The libyaml pass: syntax, one document, a mapping at the top, known keys, no key twice,
 * the right shape (scalar, list, mapping) for each key, no aliases. 0, or -1 with `err`. */
int config_yaml_scan(const char *file, const unsigned char *data, size_t len,
                     struct config_doc *doc, char *err, size_t errlen);
const struct config_pos *config_doc_find(const struct config_doc *doc, const char *path);
void config_doc_free(struct config_doc *doc);
/* "message_size, recipients, ..." for an unknown-key message. */
void config_keys_known(const struct config_key *keys, size_t n, char *out, size_t outlen);
const struct config_key *config_key_find(const struct config_key *keys, size_t n, const char *name);

/* What a value of `k` (or one item of it, when `item`) must look like, for messages:
 * "a size like 10M", "0 (no limit) or a number from 1 to 1000000". */
void config_key_expect(const struct config_key *k, bool item, char *out, size_t outlen);

/* Does a value of this key live in struct config as a char * (a list: char **)? */
bool config_key_is_text(const struct config_key *k);
/* An integer field of `width` bytes (2, 4 or 8) at `at`. */
void config_uint_put(void *at, size_t width, uint64_t v);
uint64_t config_uint_get(const void *at, size_t width);

/* Value parsers: 0, or -1 when `text` is not of the form (the range is the caller's). */
int config_parse_uint(const char *text, uint64_t *out);
int config_parse_size(const char *text, uint64_t *out);
int config_parse_duration(const char *text, uint64_t *out_ms);
bool config_domain_valid(const char *text);
/* Canonical short forms: the largest unit that divides the value exactly. */
void config_format_size(uint64_t bytes, char *out, size_t outlen);
void config_format_duration(uint64_t ms, char *out, size_t outlen);
/* `path` made absolute against `base` (a directory), "." and ".." folded by name. */
char *config_path_join(const char *base, const char *path);
/* The fully qualified name of `name` from a hosts(5) file, or NULL: the canonical (first)
 * name of the first line that lists `name` and whose canonical name has a dot. Never DNS. */
char *config_hosts_fqdn(const char *hosts_path, const char *name);

/* Appends a printf-formed line to c->warnings; -1 when out of memory. */
int config_warn(struct config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads the maps c->maps names (core/config_maps.c): local-host-names into local_domains,
 * relay-domains into relay_domains, the access map (warning about entries the daemon does
 * not act on), and the maps kept for delivery, parsed so that their errors stop the load.
 * 0, or -1 with the key at fault in *key and "file:line: why" in `why`. */
int config_maps_load(struct config *c, struct fileset *files, const char **key, char *why,
                     size_t whylen);
void config_maps_free(struct config *c);

/* Checks the milters, input_mail_filters and milter_macros keys, fills in the lists not
 * given (`doc` says which were), and builds each listener's struct milter_settings
 * (core/config_milter.c). 0, or -1 with the key at fault in `key` and why in `why` (an empty
 * `why`: out of memory). */
int config_milters_load(struct config *c, const struct config_doc *doc, char *key, size_t keylen,
                        char *why, size_t whylen);
/* The listeners' settings arrays; the rest goes with the key table. */
void config_milters_free(struct config *c);

#endif
