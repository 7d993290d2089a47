/* libFuzzer: arbitrary bytes as a header block and as an envelope sender through every
 * masquerading setting the first byte picks, with a small genericstable (%0, %1, values
 * with and without a domain). The output must hold the input's bytes outside addresses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compat/masquerade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char generics_text[] = "joe j.bloggs@example.org\n"
                                    "a+*@localhost %1.%0@example.org\n"
                                    "@dept.example.com %1\n"
                                    "ann ann.smith\n"
                                    "x %%%2%\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct map_simple generics;
    static bool parsed;
    if (!parsed) {
        char err[256];
        if (map_simple_parse(MAP_GENERICSTABLE, "g", generics_text, sizeof(generics_text) - 1,
                             &generics, err, sizeof(err)) != 0)
            abort();
        parsed = true;
    }
    if (size == 0)
        return 0;
    static char *local[] = {"localhost", "mail.example.com"};
    static char *dept[] = {"dept.example.com", "example.com"};
    static char *root[] = {"root", "joe"};
    unsigned f = data[0];
    struct masquerade_settings s = {
        .as = (f & 1)   ? "example.com"
              : (f & 2) ? ""
                        : NULL,
        .hostname = "mail.example.com",
        .domains = {dept, 2},
        .exceptions = {dept, (f & 4) ? 1 : 0},
        .exposed_users = {root, 2},
        .generics_domains = {dept, 2},
        .local_domains = {local, 2},
        .genericstable = (f & 8) ? &generics : NULL,
        .always_add_domain = (f & 16) ? ((f & 2) ? "corp.example" : "") : NULL,
        .envelope = f & 32,
        .entire_domain = f & 64,
        .all_headers = f & 128,
        .limited = f & 2,
        .not_local = f & 4,
        .generics_entire_domain = f & 16,
    };
    enum masquerade_mailer m = (f & 32) ? MASQUERADE_LOCAL : MASQUERADE_SMTP;
    const char *block = (const char *)data + 1;
    size_t len = size - 1;

    struct buf out;
    buf_init(&out, 0);
    int n = masquerade_headers(&s, m, block, len, &out);
    if (n < 0 || (n == 0 && (out.len != len || (len && memcmp(out.data, block, len) != 0))))
        abort();
    buf_free(&out);

    char *sender = malloc(len + 1);
    if (sender == NULL)
        return 0;
    memcpy(sender, block, len);
    sender[len] = '\0';
    buf_init(&out, 0);
    if (masquerade_sender(&s, m, sender, &out) < 0)
        abort();
    buf_free(&out);
    free(sender);
    return 0;
}
