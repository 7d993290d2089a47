/*
 * tests/unit/json_check.h — a small strict JSON checker for the tests of util/log_json
 * (test_log_json.c and tests/fuzz/fuzz_log_json.c): says whether bytes are exactly one JSON
 * object (RFC 8259: objects, arrays, strings, numbers, true, false, null), with no raw
 * control character in a string, only well-formed escapes, well-formed UTF-8 and no
 * surrogate escape left unpaired. Header-only: each test program has its own copy.
 */
#ifndef RINGMAIL_TESTS_JSON_CHECK_H
#define RINGMAIL_TESTS_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct json_check {
    const unsigned char *p, *end;
    unsigned depth;
};

static bool json_check_value(struct json_check *j);

static void json_check_ws(struct json_check *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool json_check_hex4(struct json_check *j, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        if (j->p >= j->end)
            return false;
        unsigned char c = *j->p;
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return false;
        *v = *v * 16 + d;
    }
    return true;
}

static size_t json_check_utf8(const unsigned char *p, size_t left)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (c == 0xe0)
        lo = 0xa0;
    if (c == 0xed)
        hi = 0x9f;
    if (c == 0xf0)
        lo = 0x90;
    if (c == 0xf4)
        hi = 0x8f;
    if (!n || left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

static bool json_check_string(struct json_check *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end)
                return false;
            c = *j->p++;
            if (c == 'u') {
                unsigned v, lo;
                if (!json_check_hex4(j, &v))
                    return false;
                if (v >= 0xdc00 && v <= 0xdfff)
                    return false;
                if (v >= 0xd800 && v <= 0xdbff) {
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                        return false;
                    j->p += 2;
                    if (!json_check_hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
                        return false;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return false;
            }
        } else if (c < 0x80) {
            j->p++;
        } else {
            size_t n = json_check_utf8(j->p, (size_t)(j->end - j->p));
            if (!n)
                return false;
            j->p += n;
        }
    }
    return false;
}

static bool json_check_digits(struct json_check *j)
{
    const unsigned char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static bool json_check_number(struct json_check *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!json_check_digits(j))
        return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!json_check_digits(j))
            return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!json_check_digits(j))
            return false;
    }
    return true;
}

static bool json_check_literal(struct json_check *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

/* `open` at j->p: the members (key: value for an object) up to `close`. */
static bool json_check_items(struct json_check *j, bool object, unsigned char close)
{
    if (++j->depth > 64)
        return false;
    j->p++;
    json_check_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        json_check_ws(j);
        if (object) {
            if (!json_check_string(j))
                return false;
            json_check_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return false;
        }
        if (!json_check_value(j))
            return false;
        json_check_ws(j);
        if (j->p >= j->end)
            return false;
        unsigned char c = *j->p++;
        if (c == close) {
            j->depth--;
            return true;
        }
        if (c != ',')
            return false;
    }
}

static bool json_check_value(struct json_check *j)
{
    json_check_ws(j);
    if (j->p >= j->end)
        return false;
    switch (*j->p) {
    case '{':
        return json_check_items(j, true, '}');
    case '[':
        return json_check_items(j, false, ']');
    case '"':
        return json_check_string(j);
    case 't':
        return json_check_literal(j, "true");
    case 'f':
        return json_check_literal(j, "false");
    case 'n':
        return json_check_literal(j, "null");
    default:
        return json_check_number(j);
    }
}

/* Whether s[0..n) is exactly one JSON object (white space around it allowed). */
static bool json_check_object(const char *s, size_t n)
{
    struct json_check j = {(const unsigned char *)s, (const unsigned char *)s + n, 0};
    json_check_ws(&j);
    if (j.p >= j.end || *j.p != '{' || !json_check_value(&j))
        return false;
    json_check_ws(&j);
    return j.p == j.end;
}

#endif
