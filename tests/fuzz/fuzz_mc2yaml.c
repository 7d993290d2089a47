/* libFuzzer: arbitrary bytes as a .mc read from memory. The translation must end, never
 * crash, and yield YAML exactly when it reports no error. No includes are followed beyond
 * what the bytes name (root is an empty directory-less prefix that matches nothing). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "compat/mc_translate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mc_options o = {NULL, 0, "/nonexistent-fuzz-root", false};
    struct mc_result res = {0};
    o.future_keys = size > 0 && (data[0] & 1);
    enum mc_status st = mc_translate_mem("fuzz.mc", (const char *)data, size, &o, &res);
    if ((st == MC_STATUS_ERROR) != (res.yaml.len == 0))
        abort();
    struct buf report;
    buf_init(&report, 0);
    mc_report_print(&res.report, &report);
    buf_free(&report);
    mc_result_free(&res);
    return 0;
}
