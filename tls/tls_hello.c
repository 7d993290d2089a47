/*
 * tls/tls_hello.c — what a ClientHello offered, in words.
 *
 * When a handshake fails with "no shared cipher", what the operator needs is what the
 * client asked for: its supported_groups and signature_algorithms. Group codepoints are
 * named through the loaded providers (so a PQ provider's groups get their names); the
 * few hybrids a client may offer that no loaded provider knows, and the signature
 * schemes, come from a table; anything else is shown in hex (GREASE values included).
 */
#include <stdio.h>
#include <string.h>

#include "tls/tls_int.h"

#define TLS_EXT_SUPPORTED_GROUPS 10
#define TLS_EXT_SIGNATURE_ALGS   13

struct tls_codepoint {
    unsigned code;
    const char *name;
};

static const struct tls_codepoint tls_other_groups[] = {
    {0x6399, "X25519Kyber768Draft00"},
    {0x11eb, "SecP256r1MLKEM768"},
    {0x11ec, "X25519MLKEM768"},
    {0x11ed, "SecP384r1MLKEM1024"},
};

static const struct tls_codepoint tls_sigalgs[] = {
    {0x0201, "rsa_pkcs1_sha1"},
    {0x0203, "ecdsa_sha1"},
    {0x0301, "rsa_pkcs1_sha224"},
    {0x0303, "ecdsa_sha224"},
    {0x0401, "rsa_pkcs1_sha256"},
    {0x0403, "ecdsa_secp256r1_sha256"},
    {0x0501, "rsa_pkcs1_sha384"},
    {0x0503, "ecdsa_secp384r1_sha384"},
    {0x0601, "rsa_pkcs1_sha512"},
    {0x0603, "ecdsa_secp521r1_sha512"},
    {0x0804, "rsa_pss_rsae_sha256"},
    {0x0805, "rsa_pss_rsae_sha384"},
    {0x0806, "rsa_pss_rsae_sha512"},
    {0x0807, "ed25519"},
    {0x0808, "ed448"},
    {0x0809, "rsa_pss_pss_sha256"},
    {0x080a, "rsa_pss_pss_sha384"},
    {0x080b, "rsa_pss_pss_sha512"},
    {0x081a, "ecdsa_brainpoolP256r1tls13_sha256"},
    {0x081b, "ecdsa_brainpoolP384r1tls13_sha384"},
    {0x081c, "ecdsa_brainpoolP512r1tls13_sha512"},
};

static const char *tls_codepoint_name(const struct tls_codepoint *t, size_t n, unsigned code)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].code == code)
            return t[i].name;
    return NULL;
}

static const char *tls_group_name(const struct tls_ctx *c, unsigned code)
{
    const char *name = tls_group_display_by_id(c, code);
    return name ? name
                : tls_codepoint_name(tls_other_groups,
                                     sizeof(tls_other_groups) / sizeof(tls_other_groups[0]), code);
}

static const char *tls_sigalg_name(const struct tls_ctx *c, unsigned code)
{
    (void)c;
    return tls_codepoint_name(tls_sigalgs, sizeof(tls_sigalgs) / sizeof(tls_sigalgs[0]), code);
}

/* Both extensions are a 2-byte length followed by 2-byte codepoints. */
static void tls_hello_list(SSL *ssl, unsigned ext, const struct tls_ctx *c,
                           const char *(*name_of)(const struct tls_ctx *, unsigned), char *out,
                           size_t outlen)
{
    const unsigned char *p;
    size_t len, used = 0;
    out[0] = '\0';
    if (!SSL_client_hello_get0_ext(ssl, ext, &p, &len) || len < 2)
        return;
    size_t list = (size_t)p[0] << 8 | p[1];
    if (list > len - 2)
        list = len - 2;
    for (size_t i = 2; i + 1 < list + 2 && used < outlen; i += 2) {
        unsigned code = (unsigned)p[i] << 8 | p[i + 1];
        const char *name = name_of(c, code);
        const char *sep = used ? ":" : "";
        used += (size_t)(name ? snprintf(out + used, outlen - used, "%s%s", sep, name)
                              : snprintf(out + used, outlen - used, "%s0x%04x", sep, code));
    }
}

void tls_hello_offered(SSL *ssl, const struct tls_ctx *c, char *groups, size_t groupslen,
                       char *sigalgs, size_t sigalgslen)
{
    tls_hello_list(ssl, TLS_EXT_SUPPORTED_GROUPS, c, tls_group_name, groups, groupslen);
    tls_hello_list(ssl, TLS_EXT_SIGNATURE_ALGS, c, tls_sigalg_name, sigalgs, sigalgslen);
}
