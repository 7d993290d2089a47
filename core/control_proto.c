#include "core/control_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum control_verb verb;
    enum { ARGS_NONE, ARGS_FILTERS, ARGS_TARGETS, ARGS_QID } args;
} control_verbs[] = {
    {"FLUSH", CONTROL_FLUSH, ARGS_FILTERS},      {"HOLD", CONTROL_HOLD, ARGS_TARGETS},
    {"RELEASE", CONTROL_RELEASE, ARGS_TARGETS},  {"DELETE", CONTROL_DELETE, ARGS_TARGETS},
    {"REQUEUE", CONTROL_REQUEUE, ARGS_TARGETS},  {"HOSTSTAT", CONTROL_HOSTSTAT, ARGS_NONE},
    {"PURGESTAT", CONTROL_PURGESTAT, ARGS_NONE}, {"WATCH", CONTROL_WATCH, ARGS_QID},
};
#define CONTROL_NVERBS (sizeof(control_verbs) / sizeof(control_verbs[0]))

const char *control_verb_name(enum control_verb v)
{
    for (size_t i = 0; i < CONTROL_NVERBS; i++)
        if (control_verbs[i].verb == v)
            return control_verbs[i].name;
    return "?";
}

bool control_verb_privileged(enum control_verb v)
{
    /* sendmail lets anyone run the queue (restrictqrun is off by default); watching a
     * delivery shows what the log would */
    return v != CONTROL_FLUSH && v != CONTROL_WATCH;
}

void control_request_free(struct control_request *req)
{
    free(req->qids);
    free(req->filters);
    free(req->line);
    memset(req, 0, sizeof(*req));
}

/* The answer's text is the three parts joined. */
static int control_fail(struct control_request *req, char *err, size_t errlen, const char *a,
                        const char *b, const char *c)
{
    snprintf(err, errlen, "%s%s%s", a, b, c);
    control_request_free(req);
    return -1;
}

/* A token with nothing outside printable ASCII: the answer quotes it. */
static bool control_token_printable(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t < 0x21 || (unsigned char)*t > 0x7e)
            return false;
    return true;
}

static int control_add_target(struct control_request *req, char *tok, bool qid_only, char *err,
                              size_t errlen)
{
    const char *f = tok[0] == '!' ? tok + 1 : tok;
    if (!qid_only && (f[0] == 'R' || f[0] == 'S' || f[0] == 'I')) {
        if (!f[1])
            return control_fail(req, err, errlen, "empty filter: ", tok, "");
        req->filters[req->n_filters++] =
            (struct control_filter){.kind = f[0], .negate = f != tok, .text = f + 1};
        return 0;
    }
    if (!qid_only && strcasecmp(tok, "ALL") == 0) {
        req->all = true;
        return 0;
    }
    if (strlen(tok) == QID_LEN && qid_valid(tok)) {
        req->qids[req->n_qids++] = tok;
        return 0;
    }
    return control_fail(req, err, errlen,
                        qid_only ? "not a queue id: "
                                 : "not a queue id, ALL or a filter (R, S, I, !R, !S, !I): ",
                        tok, "");
}

int control_parse(const char *line, size_t len, struct control_request *req, char *err,
                  size_t errlen)
{
    memset(req, 0, sizeof(*req));
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len >= CONTROL_LINE_MAX)
        return control_fail(req, err, errlen, "request line too long", "", "");
    if (memchr(line, '\0', len))
        return control_fail(req, err, errlen, "NUL in the request", "", "");
    if (!(req->line = strndup(line, len)))
        return control_fail(req, err, errlen, "out of memory", "", "");
    /* At most one target per two octets ("R" alone is refused, "Rx" is one). */
    size_t max = len / 2 + 1;
    req->qids = calloc(max, sizeof(*req->qids));
    req->filters = calloc(max, sizeof(*req->filters));
    if (!req->qids || !req->filters)
        return control_fail(req, err, errlen, "out of memory", "", "");

    char *save = NULL, *verb = strtok_r(req->line, " \t", &save);
    if (!verb)
        return control_fail(req, err, errlen, "empty request", "", "");
    size_t v = 0;
    while (v < CONTROL_NVERBS && strcasecmp(verb, control_verbs[v].name) != 0)
        v++;
    if (v == CONTROL_NVERBS)
        return control_fail(req, err, errlen, "unknown request",
                            control_token_printable(verb) ? ": " : "",
                            control_token_printable(verb) ? verb : "");
    req->verb = control_verbs[v].verb;
    size_t n_args = 0;
    for (char *tok; (tok = strtok_r(NULL, " \t", &save)); n_args++) {
        if (!control_token_printable(tok))
            return control_fail(req, err, errlen,
                                "control character or non-ASCII octet in an argument", "", "");
        if (control_verbs[v].args == ARGS_NONE)
            return control_fail(req, err, errlen, control_verbs[v].name, " takes no arguments", "");
        if (control_add_target(req, tok, control_verbs[v].args == ARGS_QID, err, errlen) < 0)
            return -1;
    }
    if (control_verbs[v].args == ARGS_TARGETS && n_args == 0)
        return control_fail(req, err, errlen, control_verbs[v].name,
                            " needs a queue id, ALL or a filter", "");
    if (control_verbs[v].args == ARGS_QID && n_args != 1)
        return control_fail(req, err, errlen, control_verbs[v].name, " needs exactly one queue id",
                            "");
    return 0;
}

bool control_needs_envelope(const struct control_request *req)
{
    for (size_t i = 0; i < req->n_filters; i++)
        if (req->filters[i].kind != 'I')
            return true;
    return false;
}

static bool control_filter_holds(const struct control_filter *f, const char *qid,
                                 const char *sender, const char *const *rcpts, size_t n_rcpts)
{
    bool found = false;
    switch (f->kind) {
    case 'I':
        found = strcasestr(qid, f->text) != NULL;
        break;
    case 'S':
        found = sender && strcasestr(sender, f->text) != NULL;
        break;
    case 'R':
        for (size_t i = 0; i < n_rcpts && !found; i++)
            found = rcpts[i] && strcasestr(rcpts[i], f->text) != NULL;
        break;
    }
    return found != f->negate;
}

bool control_match(const struct control_request *req, const char *qid, const char *sender,
                   const char *const *rcpts, size_t n_rcpts)
{
    if (req->n_qids && !req->all) {
        bool listed = false;
        for (size_t i = 0; i < req->n_qids && !listed; i++)
            listed = strncmp(req->qids[i], qid, QID_LEN) == 0;
        if (!listed)
            return false;
    }
    for (size_t i = 0; i < req->n_filters; i++)
        if (!control_filter_holds(&req->filters[i], qid, sender, rcpts, n_rcpts))
            return false;
    return true;
}
