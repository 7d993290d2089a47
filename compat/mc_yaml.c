#include "compat/mc_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mc_yaml_type { YAML_SCALAR, YAML_MAP, YAML_LIST };

struct mc_yaml {
    char *key; /* NULL for list items and the root */
    enum mc_yaml_type type;
    char *value, *comment, *note;
    bool future;
    struct mc_yaml *first, *last, *next;
};

static struct mc_yaml *mc_yaml_node(struct mc_yaml *parent, const char *key, size_t keylen,
                                    enum mc_yaml_type type)
{
    struct mc_yaml *n = calloc(1, sizeof(*n));
    if (!n || (key && !(n->key = strndup(key, keylen)))) {
        free(n);
        return NULL;
    }
    n->type = type;
    if (parent->last)
        parent->last->next = n;
    else
        parent->first = n;
    parent->last = n;
    return n;
}

struct mc_yaml *mc_yaml_new(void)
{
    struct mc_yaml *n = calloc(1, sizeof(*n));
    if (n)
        n->type = YAML_MAP;
    return n;
}

static void mc_yaml_free_children(struct mc_yaml *n)
{
    for (struct mc_yaml *c = n->first, *next; c; c = next) {
        next = c->next;
        mc_yaml_free(c);
    }
    n->first = n->last = NULL;
}

void mc_yaml_free(struct mc_yaml *n)
{
    if (!n)
        return;
    mc_yaml_free_children(n);
    free(n->key);
    free(n->value);
    free(n->comment);
    free(n->note);
    free(n);
}

static struct mc_yaml *mc_yaml_child(struct mc_yaml *n, const char *key, size_t len)
{
    for (struct mc_yaml *c = n->first; c; c = c->next)
        if (c->key && strlen(c->key) == len && strncmp(c->key, key, len) == 0)
            return c;
    return NULL;
}

/* The node at `path`, created (as `type` at the end, maps on the way) when `create`. */
static struct mc_yaml *mc_yaml_walk(struct mc_yaml *n, const char *path, enum mc_yaml_type type,
                                    bool create)
{
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        enum mc_yaml_type want = dot ? YAML_MAP : type;
        struct mc_yaml *c = mc_yaml_child(n, path, len);
        if (c && c->type != want && create) { /* a scalar replaced by a section, or back */
            mc_yaml_free_children(c);
            c->type = want;
        }
        if (!c && (!create || !(c = mc_yaml_node(n, path, len, want))))
            return NULL;
        if (!dot)
            return c;
        n = c;
        path = dot + 1;
    }
}

static int mc_yaml_fill(struct mc_yaml *n, const char *value, bool future, const char *comment)
{
    free(n->value);
    free(n->comment);
    n->value = strdup(value);
    n->comment = comment ? strdup(comment) : NULL;
    n->future = future;
    return n->value && (!comment || n->comment) ? 0 : -1;
}

struct mc_yaml *mc_yaml_set(struct mc_yaml *node, const char *path, const char *value, bool future,
                            const char *comment)
{
    struct mc_yaml *n = mc_yaml_walk(node, path, YAML_SCALAR, true);
    return n && mc_yaml_fill(n, value, future, comment) == 0 ? n : NULL;
}

struct mc_yaml *mc_yaml_add(struct mc_yaml *node, const char *path, const char *value, bool future,
                            const char *comment)
{
    struct mc_yaml *list = mc_yaml_walk(node, path, YAML_LIST, true);
    if (!list)
        return NULL;
    for (struct mc_yaml *c = list->first; c; c = c->next)
        if (c->type == YAML_SCALAR && strcmp(c->value, value) == 0)
            return c;
    struct mc_yaml *n = mc_yaml_node(list, NULL, 0, YAML_SCALAR);
    return n && mc_yaml_fill(n, value, future, comment) == 0 ? n : NULL;
}

struct mc_yaml *mc_yaml_set_list(struct mc_yaml *node, const char *path, bool future)
{
    struct mc_yaml *list = mc_yaml_walk(node, path, YAML_LIST, true);
    if (list) {
        mc_yaml_free_children(list);
        list->future = future;
    }
    return list;
}

struct mc_yaml *mc_yaml_add_map(struct mc_yaml *node, const char *path, bool future)
{
    struct mc_yaml *list = mc_yaml_walk(node, path, YAML_LIST, true);
    struct mc_yaml *n = list ? mc_yaml_node(list, NULL, 0, YAML_MAP) : NULL;
    if (n)
        n->future = future;
    return n;
}

void mc_yaml_note(struct mc_yaml *node, const char *note)
{
    free(node->note);
    node->note = strdup(note); /* out of memory loses the note, never the key */
}

struct mc_yaml *mc_yaml_get(struct mc_yaml *node, const char *path)
{
    return mc_yaml_walk(node, path, YAML_SCALAR, false);
}

const char *mc_yaml_value(const struct mc_yaml *node)
{
    return node && node->type == YAML_SCALAR ? node->value : NULL;
}

struct mc_yaml *mc_yaml_item(struct mc_yaml *list, unsigned i)
{
    struct mc_yaml *c = list ? list->first : NULL;
    while (c && i--)
        c = c->next;
    return c;
}

void mc_yaml_remove(struct mc_yaml *node, const char *path)
{
    const char *dot = strrchr(path, '.');
    struct mc_yaml *parent = node;
    if (dot) {
        char head[256];
        snprintf(head, sizeof(head), "%.*s", (int)(dot - path), path);
        if (!(parent = mc_yaml_walk(node, head, YAML_MAP, false)))
            return;
        path = dot + 1;
    }
    struct mc_yaml *prev = NULL;
    for (struct mc_yaml *c = parent->first; c; prev = c, c = c->next) {
        if (!c->key || strcmp(c->key, path) != 0)
            continue;
        if (prev)
            prev->next = c->next;
        else
            parent->first = c->next;
        if (parent->last == c)
            parent->last = prev;
        c->next = NULL;
        mc_yaml_free(c);
        return;
    }
}

/* Does the subtree hold a key today's daemon reads? */
static bool mc_yaml_live(const struct mc_yaml *n)
{
    if (n->type == YAML_SCALAR || (n->type == YAML_LIST && !n->first))
        return !n->future;
    if (n->future)
        return false;
    for (const struct mc_yaml *c = n->first; c; c = c->next)
        if (mc_yaml_live(c))
            return true;
    return false;
}

/* Plain when YAML reads it back as this string (or the number/boolean it spells). */
static bool mc_yaml_plain(const char *s)
{
    static const char first[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789_./+";
    return *s && strchr(first, *s) &&
           strspn(s + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM"
                         "NOPQRSTUVWXYZ0123456789_./+-@") == strlen(s + 1);
}

static void mc_yaml_scalar(const char *s, struct buf *out)
{
    if (mc_yaml_plain(s)) {
        buf_printf(out, "%s", s);
        return;
    }
    buf_append(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(out, "\\x%02x", *p);
        else
            buf_append(out, p, 1);
    }
    buf_append(out, "\"", 1);
}

struct mc_yaml_pen {
    struct buf *out;
    bool future_keys;
};

/* Where a line goes: `col` spaces, "# " when commented, `rel` more spaces. `cont`: the
 * line is already started (the first key of a list item, after "- "). */
struct mc_yaml_at {
    int col, rel;
    bool commented, cont;
};

static void mc_yaml_emit(const struct mc_yaml_pen *p, const struct mc_yaml *n, struct mc_yaml_at at,
                         bool item);

/* The children of a map or list; future ones inside live output come out commented. */
static void mc_yaml_children(const struct mc_yaml_pen *p, const struct mc_yaml *n,
                             struct mc_yaml_at at)
{
    for (const struct mc_yaml *c = n->first; c; c = c->next) {
        struct mc_yaml_at here = at;
        if (!at.commented && !p->future_keys && !mc_yaml_live(c)) {
            /* the commented part starts here, at this column */
            here = (struct mc_yaml_at){at.col + at.rel, 0, true, false};
            if (at.cont)
                buf_printf(p->out, "\n");
        }
        mc_yaml_emit(p, c, here, n->type == YAML_LIST);
        at.cont = false;
    }
}

static void mc_yaml_emit(const struct mc_yaml_pen *p, const struct mc_yaml *n, struct mc_yaml_at at,
                         bool item)
{
    /* inside commented-out text the note stays a comment when the "# " is deleted */
    if (n->note && !at.cont)
        buf_printf(p->out, "%*s%s%*s# %s\n", at.col, "", at.commented ? "# " : "", at.rel, "",
                   n->note);
    if (!at.cont)
        buf_printf(p->out, "%*s%s%*s", at.col, "", at.commented ? "# " : "", at.rel, "");
    if (item)
        buf_printf(p->out, "- ");
    if (n->key)
        buf_printf(p->out, "%s:", n->key);
    if (n->type == YAML_SCALAR) {
        buf_printf(p->out, "%s", n->key ? " " : "");
        mc_yaml_scalar(n->value, p->out);
        if (n->comment)
            buf_printf(p->out, "  # %s", n->comment);
        buf_printf(p->out, "\n");
        return;
    }
    if (n->type == YAML_LIST && !n->first) {
        buf_printf(p->out, " []\n");
        return;
    }
    if (item && !n->key) { /* a mapping in a list: its first key follows the "- " */
        mc_yaml_children(p, n, (struct mc_yaml_at){at.col, at.rel + 2, at.commented, true});
        return;
    }
    buf_printf(p->out, "\n");
    mc_yaml_children(p, n, (struct mc_yaml_at){at.col, at.rel + 2, at.commented, false});
}

void mc_yaml_print(const struct mc_yaml *root, bool future_keys, struct buf *out)
{
    struct mc_yaml_pen p = {out, future_keys};
    bool header = false;
    for (const struct mc_yaml *c = root->first; c; c = c->next)
        if (future_keys || mc_yaml_live(c))
            mc_yaml_emit(&p, c, (struct mc_yaml_at){0, 0, false, false}, false);
    for (const struct mc_yaml *c = root->first; c && !future_keys; c = c->next) {
        if (mc_yaml_live(c))
            continue;
        if (!header)
            buf_printf(out, "\n# Not yet enforced by ringmaild (kept for when it is): the keys "
                            "below come from\n# the .mc but the daemon does not read them "
                            "yet. Delete the \"# \" to turn them\n# on once it does, or "
                            "translate again with --future-keys.\n");
        header = true;
        mc_yaml_emit(&p, c, (struct mc_yaml_at){0, 0, true, false}, false);
    }
}
