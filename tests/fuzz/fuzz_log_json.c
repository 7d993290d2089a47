/* libFuzzer harness for util/log_json.h: a client puts what it likes into a log line (an
 * address, a HELO name, a command's argument), and log.format: json must still write one
 * valid JSON object per line.
 *
 * Whatever the bytes (up to the first NUL, as a C string reaches the logger): the output
 * is one JSON object by the strict checker (valid UTF-8, escapes, structure), it fits the
 * buffer, a cut object says "truncated", and the same line in a buffer just big enough for
 * the fixed members is valid too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/json_check.h"
#include "util/log_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line[2048], out[LOG_JSON_MAX];
    /* util/log.c formats a line into 2 KiB: nothing longer ever reaches the converter */
    size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = '\0';
    const struct log_json_meta m = {{1796299210, 42000000}, "mx\x01", "sm-mta\xff", 4242, "info"};

    size_t len = log_json_format(out, sizeof(out), &m, line);
    check(len < sizeof(out) && out[len] == '\0');
    check(json_check_object(out, len));
    /* the longest line there is fits whole */
    check(strstr(out, "\"truncated\":true}") == NULL);

    len = log_json_format(out, LOG_JSON_MIN, &m, line);
    check(len < LOG_JSON_MIN && out[len] == '\0');
    check(json_check_object(out, len));
    return 0;
}
