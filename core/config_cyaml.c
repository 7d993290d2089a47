/*
 * core/config_cyaml.c — the libcyaml schema, built from the key table, and the load.
 *
 * Every scalar is a string in the schema and lands in a struct config_raw slot (one slot per
 * key of a mapping), so libcyaml's job is the tree and the memory; the values are read and
 * checked by config.c, which knows where they stand. The schema is built once from
 * config_keys[] so that a key cannot be added to one and forgotten in the other.
 */
#include "core/config_int.h"

#include <cyaml/cyaml.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fields of all mappings (each ended by a NULL key) and the entry schemas of lists of
 * mappings; config_keys.c has about 210 keys in 15 mappings. */
#define CONFIG_SCHEMA_FIELDS  512
#define CONFIG_SCHEMA_ENTRIES 8

static struct {
    cyaml_schema_field_t fields[CONFIG_SCHEMA_FIELDS];
    size_t n_fields;
    cyaml_schema_value_t entries[CONFIG_SCHEMA_ENTRIES];
    size_t n_entries;
    cyaml_schema_value_t top;
    bool overflow;
} config_schema;
static pthread_once_t config_schema_once = PTHREAD_ONCE_INIT;

static const cyaml_schema_value_t config_schema_string = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

/* An empty value loads as NULL: the same as leaving the key out. */
#define CONFIG_SCHEMA_FLAGS ((enum cyaml_flag)(CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER_NULL))

static const cyaml_schema_field_t *config_schema_fields(const struct config_key *keys, size_t n)
{
    if (config_schema.n_fields + n + 1 > CONFIG_SCHEMA_FIELDS) {
        config_schema.overflow = true;
        return NULL;
    }
    cyaml_schema_field_t *f = &config_schema.fields[config_schema.n_fields];
    config_schema.n_fields += n + 1;
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        uint32_t slot = (uint32_t)(i * sizeof(struct config_raw));
        f[i].key = k->name;
        f[i].value.flags = CONFIG_SCHEMA_FLAGS;
        if (k->flags & CONFIG_F_OR_ONE) { /* one value or a list: config.c reads the doc */
            f[i].value = (cyaml_schema_value_t){.type = CYAML_IGNORE, .flags = CYAML_FLAG_OPTIONAL};
            continue;
        }
        if (k->type == CONFIG_SECTION || k->type == CONFIG_MAPS) {
            cyaml_schema_value_t map = {
                .type = CYAML_MAPPING,
                .flags = k->type == CONFIG_SECTION ? CONFIG_SCHEMA_FLAGS : CYAML_FLAG_DEFAULT,
                .data_size = (uint32_t)(k->n_sub * sizeof(struct config_raw)),
                .mapping.fields = config_schema_fields(k->sub, k->n_sub),
            };
            if (k->type == CONFIG_SECTION) {
                f[i].data_offset = slot + offsetof(struct config_raw, map);
                f[i].value = map;
                continue;
            }
            if (config_schema.n_entries == CONFIG_SCHEMA_ENTRIES) {
                config_schema.overflow = true;
                return NULL;
            }
            cyaml_schema_value_t *entry = &config_schema.entries[config_schema.n_entries++];
            *entry = map;
            f[i].data_offset = slot + offsetof(struct config_raw, maps);
            f[i].count_offset = slot + offsetof(struct config_raw, n_maps);
            f[i].count_size = sizeof(unsigned);
            f[i].value.type = CYAML_SEQUENCE;
            f[i].value.data_size = map.data_size;
            f[i].value.sequence.entry = entry;
            f[i].value.sequence.max = CYAML_UNLIMITED;
        } else if (k->flags & CONFIG_F_LIST) {
            f[i].data_offset = slot + offsetof(struct config_raw, items);
            f[i].count_offset = slot + offsetof(struct config_raw, n_items);
            f[i].count_size = sizeof(unsigned);
            f[i].value.type = CYAML_SEQUENCE;
            f[i].value.data_size = sizeof(char *);
            f[i].value.sequence.entry = &config_schema_string;
            f[i].value.sequence.max = CYAML_UNLIMITED;
        } else {
            f[i].data_offset = slot + offsetof(struct config_raw, text);
            f[i].value.type = CYAML_STRING;
            f[i].value.data_size = sizeof(char);
            f[i].value.string.max = CYAML_UNLIMITED;
        }
    }
    f[n] = (cyaml_schema_field_t)CYAML_FIELD_END;
    return f;
}

static void config_schema_build(void)
{
    config_schema.top = (cyaml_schema_value_t){
        .type = CYAML_MAPPING,
        .flags = CYAML_FLAG_POINTER,
        .data_size = (uint32_t)(config_n_keys * sizeof(struct config_raw)),
        .mapping.fields = config_schema_fields(config_keys, config_n_keys),
    };
}

/* libcyaml's error, and the first position of its backtrace (that of the last event it
 * read: near the problem, not always on it). */
struct config_cyaml_log {
    char msg[256];
    unsigned line, column;
};

/* libcyaml's callback type carries no format attribute; this one says it is printf-like. */
__attribute__((format(printf, 3, 0))) static void config_cyaml_log(cyaml_log_t level, void *ctx,
                                                                   const char *fmt, va_list args)
{
    struct config_cyaml_log *log = ctx;
    char text[256];
    if (level < CYAML_LOG_ERROR)
        return;
    vsnprintf(text, sizeof(text), fmt, args);
    text[strcspn(text, "\n")] = '\0';
    const char *at = strstr(text, "(line: ");
    if (at && log->line == 0)
        sscanf(at, "(line: %u, column: %u)", &log->line, &log->column);
    else if (!at && !log->msg[0] && !strstr(text, "Backtrace"))
        snprintf(log->msg, sizeof(log->msg), "%s",
                 strncmp(text, "Load: ", 6) == 0 ? text + 6 : text);
}

static cyaml_config_t config_cyaml_config(struct config_cyaml_log *log)
{
    return (cyaml_config_t){
        .log_fn = config_cyaml_log,
        .log_ctx = log,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_NO_ALIAS,
    };
}

int config_cyaml_load(const char *file, const unsigned char *data, size_t len,
                      struct config_raw **out, char *err, size_t errlen)
{
    pthread_once(&config_schema_once, config_schema_build);
    if (config_schema.overflow) { /* a key table larger than the arrays above: a bug */
        snprintf(err, errlen, "%s: internal error: configuration schema too large", file);
        return -1;
    }
    struct config_cyaml_log log = {0};
    cyaml_config_t cc = config_cyaml_config(&log);
    *out = NULL;
    cyaml_err_t rc =
        cyaml_load_data(data, len, &cc, &config_schema.top, (cyaml_data_t **)out, NULL);
    if (rc == CYAML_OK)
        return 0;
    /* The libyaml pass has already refused what this schema refuses, so this is rare
     * (memory); still say where libcyaml thinks it was. */
    snprintf(err, errlen, "%s:%u:%u: %s", file, log.line ? log.line : 1, log.line ? log.column : 1,
             log.msg[0] ? log.msg : cyaml_strerror(rc));
    return -1;
}

void config_cyaml_free(struct config_raw *raw)
{
    struct config_cyaml_log log = {0};
    cyaml_config_t cc = config_cyaml_config(&log);
    if (raw)
        cyaml_free(&cc, &config_schema.top, raw, 0);
}
