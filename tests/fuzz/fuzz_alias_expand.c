/* libFuzzer: an aliases file and a recipient through alias expansion, the RCPT check and a
 * .forward. The first line is the recipient; the rest is the aliases text, which also serves
 * as every :include: file and as the .forward, so includes nest and loop. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compat/alias_expand.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_input {
    const char *text;
    size_t len;
};

static bool fuzz_user_exists(void *arg, const char *login)
{
    (void)arg;
    return strcmp(login, "bob") == 0 || strcmp(login, "root") == 0;
}

static int fuzz_include(void *arg, const char *path, const char *owner, char **text, size_t *len)
{
    const struct fuzz_input *in = arg;
    (void)owner;
    if (path[1] == 'x') /* "/x...": a file that cannot be read */
        return ENOENT;
    if (!(*text = malloc(in->len + 1)))
        return ENOMEM;
    memcpy(*text, in->text, in->len);
    (*text)[in->len] = '\0';
    *len = in->len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const domains[] = {"example.com", "localhost"};
    static const char vt[] = "info@example.com all\n@example.com %1+%2@localhost\n"
                             "x@example.com error:nouser\n";
    const char *nl = memchr(data, '\n', size);
    size_t rlen = nl ? (size_t)(nl - (const char *)data) : size;
    char *rcpt = malloc(rlen + 1);
    if (!rcpt)
        return 0;
    memcpy(rcpt, data, rlen);
    rcpt[rlen] = '\0';
    struct fuzz_input in = {.text = nl ? nl + 1 : "", .len = nl ? size - rlen - 1 : 0};

    char err[256];
    struct alias_map aliases = {0};
    struct map_simple virtusertable = {0};
    int parsed = aliases_parse("aliases", in.text, in.len, &aliases, err, sizeof(err));
    map_simple_parse(MAP_VIRTUSERTABLE, "vt", vt, sizeof(vt) - 1, &virtusertable, err, sizeof(err));
    struct alias_expand_settings s = {.aliases = &aliases,
                                      .n_aliases = parsed == 0,
                                      .virtusertable = &virtusertable,
                                      .local_domains = domains,
                                      .n_local_domains = 2,
                                      .luser_relay = rlen % 3 == 0 ? "local:nobody" : NULL,
                                      .user_exists = fuzz_user_exists,
                                      .include = fuzz_include,
                                      .arg = &in};
    struct alias_refusal why;
    alias_known(&s, rcpt, &why);
    struct alias_leaves out = {0};
    if (alias_expand(&s, rcpt, &out) == 0) {
        size_t n = out.n;
        for (size_t i = 0; i < n; i++)
            if (out.v[i].kind == ALIAS_LEAF_MAILBOX && !out.v[i].no_forward) {
                struct alias_leaf from = out.v[i]; /* out may move as it grows */
                alias_expand_forward(&s, &from, ".forward", in.text, in.len, &out);
            }
    }
    alias_leaves_free(&out);
    aliases_free(&aliases);
    map_simple_free(&virtusertable);
    free(rcpt);
    return 0;
}
