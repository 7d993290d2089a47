/* libFuzzer: arbitrary bytes through every sendmail text-map parser, then lookups on what
 * parsed. The first byte picks the lookups' key from the data so they hit real entries. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "compat/map_access.h"
#include "compat/map_aliases.h"
#include "compat/map_list.h"
#include "compat/map_simple.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[512], key[128], out[512];
    struct buf dump;
    size_t klen = size < sizeof(key) - 1 ? size : sizeof(key) - 1;
    memcpy(key, data, klen);
    key[klen] = '\0';
    buf_init(&dump, 0);

    struct access_map a = {0};
    if (access_parse("f", text, size, &a, err, sizeof(err)) == 0) {
        access_lookup_host(&a, "connect", key);
        access_lookup_ip(&a, "connect", key);
        access_lookup_address(&a, "to", key);
        access_dump(&a, &dump);
    }
    access_free(&a);

    struct alias_map al = {0};
    if (aliases_parse("f", text, size, &al, err, sizeof(err)) == 0) {
        aliases_lookup(&al, key);
        aliases_dump(&al, &dump);
    }
    aliases_free(&al);

    for (int k = MAP_MAILERTABLE; k <= MAP_GENERICSTABLE; k++) {
        struct map_simple m = {0};
        if (map_simple_parse((enum map_simple_kind)k, "f", text, size, &m, err, sizeof(err)) == 0) {
            mailertable_lookup(&m, key);
            virtuser_lookup(&m, key, out, sizeof(out));
            generics_lookup(&m, key);
            map_simple_dump(&m, &dump);
        }
        map_simple_free(&m);
    }

    struct map_strings l = {0};
    if (map_list_parse("f", text, size, &l, err, sizeof(err)) == 0)
        map_list_match_domain(&l, key);
    map_strings_free(&l);
    buf_free(&dump);
    return 0;
}
