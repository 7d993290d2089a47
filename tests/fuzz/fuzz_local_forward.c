/* libFuzzer: arbitrary bytes as the .forward text an agent sends the engine
 * (core/local_forward.h). The agent runs as the user, so the user chooses every byte: the
 * engine's reading of the :include: sections must stay inside the text whatever the
 * headers claim, and a file it returns is exactly the bytes a section holds. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/local_forward.h"
#include "delivery/local_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[LOCAL_FORWARD_MAX];
    if (size >= sizeof(text))
        size = sizeof(text) - 1;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);
    if (local_forward_text_len(text) > len)
        abort();
    /* every path a header names, and one no header does */
    char path[LOCAL_FORWARD_MAX];
    for (const char *p = text; (p = strstr(p, "include ")); p++) {
        const char *sp = strchr(p + 8, ' ');
        sp = sp ? strchr(sp + 1, ' ') : NULL;
        size_t pl = sp ? strcspn(sp + 1, "\n") : 0;
        memcpy(path, sp ? sp + 1 : "/nowhere", sp ? pl : 8);
        path[sp ? pl : 8] = '\0';
        char *got = NULL;
        size_t got_len = 0;
        int err = local_forward_include(text, path, &got, &got_len);
        if (err == 0 && (!got || strlen(got) != got_len || !memmem(text, len, got, got_len)))
            abort();
        if (err != 0 && got)
            abort();
        free(got);
    }
    return 0;
}
