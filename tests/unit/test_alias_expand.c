/* One local recipient expanded as sendmail does: aliases (lists, nesting, self-reference,
 * loops, depth, owner-, +detail, \user, :include:, error:), the virtusertable, LUSER_RELAY,
 * a user's .forward, and the cheap RCPT check. The .forward / :include: reader too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat/alias_expand.h"

static const char *const users[] = {"bob", "alice", "root", "carol"};

static bool test_user_exists(void *arg, const char *login)
{
    (void)arg;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        if (strcmp(users[i], login) == 0)
            return true;
    return false;
}

/* "/etc/mail/lists/team" has two names and a program; "/eio" fails for now; others: none. */
static int test_include(void *arg, const char *path, const char *owner, char **text, size_t *len)
{
    (void)owner;
    if (arg)
        (*(int *)arg)++;
    static const char team[] = "# the team\nalice, carol\n\n\"|/usr/bin/archive team\"\n";
    if (strcmp(path, "/etc/mail/lists/team") == 0) {
        *text = strdup(team);
        *len = strlen(team);
        return *text ? 0 : ENOMEM;
    }
    if (strcmp(path, "/etc/mail/lists/self") == 0) {
        static const char self[] = ":include:/etc/mail/lists/self\n";
        *text = strdup(self);
        *len = strlen(self);
        return 0;
    }
    return strcmp(path, "/eio") == 0 ? EIO : ENOENT;
}

struct fixture {
    struct alias_map aliases;
    struct map_simple virtusertable;
    struct alias_expand_settings s;
    struct alias_leaves out;
};

static const char aliases_text[] =
    "postmaster: root\n"
    "root: root, ops@remote.example\n"
    "staff: bob, \"|/usr/bin/prog a,b\", /var/log/staff.mbox, carol@remote.example\n"
    "all: staff, bob, Alice\n"
    "loop-a: loop-b\n"
    "loop-b: loop-a\n"
    "half-a: loop-c, carol\n"
    "loop-c: half-a\n"
    "list: bob, alice\n"
    "owner-list: listmaster@remote.example\n"
    "multi: list, carol\n"
    "owner-multi: a, b\n"
    "bob+lists: alice\n"
    "carol+*: bob\n"
    "team: :include:/etc/mail/lists/team\n"
    "twice: :include:/etc/mail/lists/team, team, :include:/etc/mail/lists/team\n"
    "broken: :include:/missing\n"
    "flaky: :include:/eio\n"
    "selfinc: :include:/etc/mail/lists/self\n"
    "spammer: error:5.7.1:550 go away\n"
    "d0: d1\nd1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\nd8: d9\nd9: bob\n"
    "e0: d0\n"
    "maildrop: \\bob\n";

static const char virtuser_text[] = "info@example.com all\n"
                                    "sales@example.com list@localhost\n"
                                    "nobody@example.com error:nouser\n"
                                    "spam@example.com error:5.7.1:550 no spam here\n"
                                    "tmp@example.com error:tempfail try later\n"
                                    "@virtual.example %1@remote.example\n";

static int setup(void **state)
{
    static const char *const domains[] = {"example.com", "localhost", "virtual.example"};
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    assert_int_equal(
        aliases_parse("aliases", aliases_text, strlen(aliases_text), &f->aliases, err, sizeof(err)),
        0);
    assert_int_equal(map_simple_parse(MAP_VIRTUSERTABLE, "virtusertable", virtuser_text,
                                      strlen(virtuser_text), &f->virtusertable, err, sizeof(err)),
                     0);
    f->s = (struct alias_expand_settings){.aliases = &f->aliases,
                                          .n_aliases = 1,
                                          .virtusertable = &f->virtusertable,
                                          .local_domains = domains,
                                          .n_local_domains = 3,
                                          .user_exists = test_user_exists,
                                          .include = test_include};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    alias_leaves_free(&f->out);
    aliases_free(&f->aliases);
    map_simple_free(&f->virtusertable);
    free(f);
    return 0;
}

/* Expands rcpt into a fresh f->out. */
static struct alias_leaves *expand(struct fixture *f, const char *rcpt)
{
    alias_leaves_free(&f->out);
    assert_int_equal(alias_expand(&f->s, rcpt, &f->out), 0);
    return &f->out;
}

/* The leaf of `kind` with `value`, or a test failure. */
static const struct alias_leaf *leaf(const struct alias_leaves *l, enum alias_leaf_kind kind,
                                     const char *value)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].kind == kind && strcmp(l->v[i].value, value) == 0)
            return &l->v[i];
    fail_msg("no leaf %d %s among %zu", (int)kind, value, l->n);
    return NULL;
}

static void test_user_and_unknown(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "bob");
    assert_int_equal(l->n, 1);
    const struct alias_leaf *b = leaf(l, ALIAS_LEAF_MAILBOX, "bob");
    assert_null(b->detail);
    assert_null(b->owner);
    assert_null(b->sender);
    assert_false(b->no_forward);
    assert_string_equal(b->address, "bob");

    l = expand(f, "BOB@Example.COM"); /* finduser: the lower-cased login */
    assert_int_equal(l->n, 1);
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->address, "BOB@Example.COM");

    l = expand(f, "nosuch@example.com");
    assert_int_equal(l->n, 1);
    const struct alias_leaf *e = leaf(l, ALIAS_LEAF_ERROR, "User unknown");
    assert_string_equal(e->code, "550");
    assert_string_equal(e->dsn, "5.1.1");
    assert_string_equal(e->address, "nosuch@example.com");

    l = expand(f, "bob@remote.example"); /* not a local domain */
    assert_int_equal(l->n, 1);
    leaf(l, ALIAS_LEAF_REMOTE, "bob@remote.example");
}

static void test_list_every_form(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "Staff@example.com"); /* aliases ignore case */
    assert_int_equal(l->n, 4);
    leaf(l, ALIAS_LEAF_MAILBOX, "bob");
    const struct alias_leaf *p = leaf(l, ALIAS_LEAF_PROGRAM, "/usr/bin/prog a,b");
    assert_null(p->owner); /* from the aliases: runs as the default user */
    assert_string_equal(p->address, "|/usr/bin/prog a,b");
    assert_null(leaf(l, ALIAS_LEAF_FILE, "/var/log/staff.mbox")->owner);
    leaf(l, ALIAS_LEAF_REMOTE, "carol@remote.example");
}

static void test_nested_and_duplicates(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "all");
    /* staff's four, bob again (a duplicate), Alice lower-cased as the system has her */
    assert_int_equal(l->n, 5);
    leaf(l, ALIAS_LEAF_MAILBOX, "alice");
    size_t bobs = 0;
    for (size_t i = 0; i < l->n; i++)
        bobs += l->v[i].kind == ALIAS_LEAF_MAILBOX && strcmp(l->v[i].value, "bob") == 0;
    assert_int_equal(bobs, 1);
}

static void test_self_reference(void **state)
{
    struct fixture *f = *state;
    /* "root: root, ops@remote.example": root's own mailbox, not aliased again (QSELFREF) */
    struct alias_leaves *l = expand(f, "postmaster");
    assert_int_equal(l->n, 2);
    assert_false(leaf(l, ALIAS_LEAF_MAILBOX, "root")->no_forward);
    leaf(l, ALIAS_LEAF_REMOTE, "ops@remote.example");
}

static void test_loops(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "loop-a");
    assert_int_equal(l->n, 1);
    const struct alias_leaf *e = leaf(l, ALIAS_LEAF_ERROR, "aliasing/forwarding loop broken");
    assert_string_equal(e->code, "554");
    assert_string_equal(e->dsn, "5.4.6");

    l = expand(f, "half-a"); /* the loop back is dropped, carol still gets it */
    assert_int_equal(l->n, 1);
    leaf(l, ALIAS_LEAF_MAILBOX, "carol");

    l = expand(f, "selfinc"); /* an include file that includes itself */
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].dsn, "5.4.6");
}

static void test_depth(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "d0"); /* ten aliases deep: still delivered */
    assert_int_equal(l->n, 1);
    assert_int_equal(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->depth, 10);

    l = expand(f, "e0"); /* eleven: sendmail's MaxAliasRecursion */
    assert_int_equal(l->n, 1);
    leaf(l, ALIAS_LEAF_ERROR, "aliasing/forwarding loop broken (11 aliases deep; 10 max)");
    assert_string_equal(l->v[0].dsn, "5.4.6");
}

static void test_owner(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "list");
    assert_int_equal(l->n, 2);
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->sender, "listmaster@remote.example");
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "alice")->sender, "listmaster@remote.example");

    /* owner-multi is a list: the sender is "owner-multi"; the inner list keeps its own */
    l = expand(f, "multi");
    assert_int_equal(l->n, 3);
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "carol")->sender, "owner-multi");
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->sender, "listmaster@remote.example");

    l = expand(f, "owner-list"); /* an owner- alias is an alias like any other */
    leaf(l, ALIAS_LEAF_REMOTE, "listmaster@remote.example");
}

static void test_detail(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "bob+news@example.com"); /* no alias: bob, $h news */
    assert_int_equal(l->n, 1);
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->detail, "news");

    l = expand(f, "bob+lists"); /* "user+detail" first */
    assert_int_equal(l->n, 1);
    assert_null(leaf(l, ALIAS_LEAF_MAILBOX, "alice")->detail);

    l = expand(f, "carol+x"); /* then "user+*" */
    assert_int_equal(l->n, 1);
    leaf(l, ALIAS_LEAF_MAILBOX, "bob");

    l = expand(f, "list+x"); /* then "user": the alias, the detail dropped */
    assert_int_equal(l->n, 2);
    assert_null(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->detail);
}

static void test_backslash(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "\\root"); /* neither aliased nor forwarded */
    assert_int_equal(l->n, 1);
    assert_true(leaf(l, ALIAS_LEAF_MAILBOX, "root")->no_forward);

    l = expand(f, "maildrop");
    assert_int_equal(l->n, 1);
    assert_true(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->no_forward);
}

static void test_include_and_errors(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "team");
    assert_int_equal(l->n, 3);
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "alice")->include, "/etc/mail/lists/team");
    const struct alias_leaf *p = leaf(l, ALIAS_LEAF_PROGRAM, "/usr/bin/archive team");
    assert_string_equal(p->include, "/etc/mail/lists/team");
    assert_null(p->owner);

    int reads = 0;
    f->s.arg = &reads;
    l = expand(f, "twice"); /* a file named twice is read once (sendmail's sameaddr) */
    assert_int_equal(l->n, 3);
    assert_int_equal(reads, 1);
    f->s.arg = NULL;

    l = expand(f, "broken"); /* missing: sendmail bounces (550 5.2.4) */
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].code, "550");
    assert_string_equal(l->v[0].dsn, "5.2.4");
    assert_string_equal(l->v[0].address, ":include:/missing");

    l = expand(f, "flaky"); /* a transient error defers */
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].code, "451");
    assert_string_equal(l->v[0].dsn, "4.2.4");

    l = expand(f, "spammer");
    assert_int_equal(l->n, 1);
    const struct alias_leaf *e = leaf(l, ALIAS_LEAF_ERROR, "go away");
    assert_string_equal(e->code, "550");
    assert_string_equal(e->dsn, "5.7.1");
    assert_string_equal(e->address, "spammer");
}

static void test_virtusertable(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "info@example.com"); /* to an alias */
    assert_int_equal(l->n, 5);
    leaf(l, ALIAS_LEAF_PROGRAM, "/usr/bin/prog a,b");

    l = expand(f, "sales@example.com"); /* to an address in a local domain, then aliased */
    assert_int_equal(l->n, 2);
    assert_string_equal(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->sender, "listmaster@remote.example");

    l = expand(f, "joe@virtual.example"); /* @domain with %1 */
    assert_int_equal(l->n, 1);
    leaf(l, ALIAS_LEAF_REMOTE, "joe@remote.example");

    l = expand(f, "nobody@example.com");
    const struct alias_leaf *e = leaf(l, ALIAS_LEAF_ERROR, "User unknown");
    assert_string_equal(e->code, "550");
    assert_string_equal(e->dsn, "5.1.1");

    l = expand(f, "spam@example.com");
    e = leaf(l, ALIAS_LEAF_ERROR, "no spam here");
    assert_string_equal(e->dsn, "5.7.1");

    l = expand(f, "tmp@example.com");
    e = leaf(l, ALIAS_LEAF_ERROR, "try later");
    assert_string_equal(e->code, "451");

    l = expand(f, "\\info@example.com"); /* quoted: no virtusertable, no alias */
    leaf(l, ALIAS_LEAF_ERROR, "User unknown");
}

static void test_luser_relay(void **state)
{
    struct fixture *f = *state;
    f->s.luser_relay = "local:postmaster";
    struct alias_leaves *l = expand(f, "nosuch@example.com");
    assert_int_equal(l->n, 2);
    leaf(l, ALIAS_LEAF_MAILBOX, "root");

    f->s.luser_relay = "local:nosuch2"; /* relayed once only */
    l = expand(f, "nosuch@example.com");
    leaf(l, ALIAS_LEAF_ERROR, "User unknown");

    /* sendmail's Localaddr: user+detail<@host>, the name sent on to the relay's domain */
    f->s.luser_relay = "relay:[hub.example]";
    l = expand(f, "nosuch+x@example.com");
    assert_int_equal(l->n, 1);
    const struct alias_leaf *r = leaf(l, ALIAS_LEAF_REMOTE, "nosuch+x@[hub.example]");
    assert_string_equal(r->relay, "relay:[hub.example]");
    assert_string_equal(r->address, "nosuch+x@example.com");
    f->s.luser_relay = "hub.example";
    l = expand(f, "nosuch");
    assert_string_equal(leaf(l, ALIAS_LEAF_REMOTE, "nosuch@hub.example")->relay, "hub.example");
    f->s.luser_relay = "[10.0.0.5]";
    l = expand(f, "nosuch@example.com");
    leaf(l, ALIAS_LEAF_REMOTE, "nosuch@[10.0.0.5]");
    f->s.luser_relay = "esmtp:[10.0.0.5]:2525"; /* a port is no part of the domain */
    l = expand(f, "nosuch@example.com");
    leaf(l, ALIAS_LEAF_REMOTE, "nosuch@[10.0.0.5]");
    f->s.luser_relay = "hub.example:2525";
    l = expand(f, "nosuch@example.com");
    assert_string_equal(leaf(l, ALIAS_LEAF_REMOTE, "nosuch@hub.example")->relay,
                        "hub.example:2525");

    /* FEATURE(preserve_luser_host): the recipient's own domain; without one, the relay's */
    f->s.preserve_luser_host = true;
    f->s.luser_relay = "smtp:hub.example";
    l = expand(f, "nosuch+x@example.com");
    assert_string_equal(leaf(l, ALIAS_LEAF_REMOTE, "nosuch+x@example.com")->relay,
                        "smtp:hub.example");
    l = expand(f, "nosuch");
    leaf(l, ALIAS_LEAF_REMOTE, "nosuch@hub.example");
    f->s.preserve_luser_host = false;

    f->s.luser_relay = "lost@remote.example";
    l = expand(f, "nosuch@example.com");
    assert_null(leaf(l, ALIAS_LEAF_REMOTE, "lost@remote.example")->relay);
    f->s.luser_relay = NULL;
}

static void test_forward(void **state)
{
    struct fixture *f = *state;
    struct alias_leaves *l = expand(f, "bob+news");
    struct alias_leaf from = l->v[0];
    from.sender = "owner@remote.example";
    static const char text[] = "# vacation\n\\bob, \"|/usr/bin/vacation bob\"\n"
                               "alice, bob, /home/bob/copy\nstaff\n";
    /* appended to the recipient's own leaves: duplicates across hops drop */
    assert_int_equal(alias_expand_forward(&f->s, &from, "~bob/.forward", text, strlen(text), l), 0);
    /* \bob, vacation, alice, copy, and staff's four (its bob has no +detail: another address) */
    assert_int_equal(l->n, 1 + 8);
    const struct alias_leaf *self = NULL;
    for (size_t i = 1; i < l->n; i++)
        if (l->v[i].kind == ALIAS_LEAF_MAILBOX && strcmp(l->v[i].value, "bob") == 0 &&
            l->v[i].detail)
            self = &l->v[i];
    assert_non_null(self);
    assert_true(self->no_forward);
    assert_string_equal(self->detail, "news");
    assert_string_equal(self->sender, "owner@remote.example");
    assert_string_equal(leaf(l, ALIAS_LEAF_PROGRAM, "/usr/bin/vacation bob")->owner, "bob");
    assert_string_equal(leaf(l, ALIAS_LEAF_FILE, "/home/bob/copy")->owner, "bob");
    assert_null(leaf(l, ALIAS_LEAF_MAILBOX, "alice")->owner);
    /* staff's program comes from the aliases: the default user runs it */
    assert_null(leaf(l, ALIAS_LEAF_PROGRAM, "/usr/bin/prog a,b")->owner);
    assert_int_equal(leaf(l, ALIAS_LEAF_MAILBOX, "alice")->depth, 1);
}

static void test_forward_edge_cases(void **state)
{
    struct fixture *f = *state;
    struct alias_leaf from = {.kind = ALIAS_LEAF_MAILBOX, .value = "bob", .address = "bob"};
    struct alias_leaves *l = &f->out;
    alias_leaves_free(l);
    static const char empty[] = "# nothing here\n\n";
    assert_int_equal(alias_expand_forward(&f->s, &from, "f", empty, strlen(empty), l), 0);
    assert_int_equal(l->n, 1); /* an empty .forward: the mailbox, as sendmail */
    assert_true(leaf(l, ALIAS_LEAF_MAILBOX, "bob")->no_forward);

    alias_leaves_free(l);
    static const char bad[] = "alice, \"|unbalanced\ncarol\n";
    assert_int_equal(alias_expand_forward(&f->s, &from, "f", bad, strlen(bad), l), 0);
    assert_int_equal(l->n, 3); /* the bad item bounces, the others go */
    leaf(l, ALIAS_LEAF_MAILBOX, "alice");
    leaf(l, ALIAS_LEAF_MAILBOX, "carol");
    leaf(l, ALIAS_LEAF_ERROR, "f:1: unbalanced double quote: \"|unbalanced");

    alias_leaves_free(l);
    from.depth = ALIAS_EXPAND_DEPTH_MAX; /* ten hops of .forward already */
    assert_int_equal(alias_expand_forward(&f->s, &from, "f", bad, strlen(bad), l), 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].dsn, "5.4.6");
}

static void test_parse_targets(void **state)
{
    (void)state;
    static const char text[] = "a, b\n# c\n  \":include:/x\" , error:4.2.2:452 full\n"
                               "bad one\nc\0d\n";
    struct alias_list list = {0};
    assert_int_equal(aliases_parse_targets("f", text, sizeof(text) - 1, &list), 0);
    assert_int_equal(list.n, 6);
    assert_int_equal(list.v[2].kind, ALIAS_INCLUDE);
    assert_string_equal(list.v[2].value, "/x");
    assert_int_equal(list.v[3].kind, ALIAS_ERROR);
    assert_string_equal(list.v[3].code, "452");
    assert_int_equal(list.v[4].kind, ALIAS_ERROR); /* white space in an address */
    assert_string_equal(list.v[4].dsn, "5.1.3");
    assert_int_equal(list.v[5].kind, ALIAS_ERROR); /* the NUL byte ends the file */
    assert_string_equal(list.v[5].value, "f:5: NUL byte in the line");
    alias_list_free(&list);
}

static void test_known(void **state)
{
    struct fixture *f = *state;
    struct alias_refusal why;
    assert_true(alias_known(&f->s, "staff@example.com", &why));
    assert_true(alias_known(&f->s, "Bob+anything@example.com", &why));
    assert_true(alias_known(&f->s, "carol+x", &why));
    assert_true(alias_known(&f->s, "info@example.com", &why));
    assert_true(alias_known(&f->s, "anyone@virtual.example", &why));
    assert_true(alias_known(&f->s, "broken", &why)); /* not expanded at RCPT */
    assert_false(alias_known(&f->s, "nosuch@example.com", &why));
    assert_string_equal(why.code, "550");
    assert_string_equal(why.dsn, "5.1.1");
    assert_string_equal(why.text, "User unknown");
    assert_false(alias_known(&f->s, "spam@example.com", &why));
    assert_string_equal(why.text, "no spam here");
    assert_false(alias_known(&f->s, "nobody@example.com", &why));
    assert_string_equal(why.dsn, "5.1.1");
    assert_false(alias_known(&f->s, "spammer", &why));
    assert_string_equal(why.text, "go away");
    assert_false(alias_known(&f->s, "\\staff", &why)); /* quoted: only users */
    f->s.luser_relay = "relay:[hub.example]";
    assert_true(alias_known(&f->s, "nosuch@example.com", &why));
    f->s.luser_relay = NULL;
}

/* The lookup is a binary search over the parsed names: every one found in any case, in a
 * map whose file order is not the sorted order; names between them not found. */
static void test_lookup_sorted(void **state)
{
    (void)state;
    char text[64 * 40] = "", name[32], err[256];
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "N%02d_%c: bob\n", (i * 37) % 64, 'a' + i % 26);
        strcat(text, name);
    }
    struct alias_map m = {0};
    assert_int_equal(aliases_parse("a", text, strlen(text), &m, err, sizeof(err)), 0);
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "n%02d_%c", (i * 37) % 64, 'A' + i % 26);
        const struct alias *a = aliases_lookup(&m, name);
        assert_non_null(a);
        assert_int_equal(a->line, (unsigned)i + 1);
        snprintf(name, sizeof(name), "n%02d_", (i * 37) % 64);
        assert_null(aliases_lookup(&m, name));
    }
    assert_null(aliases_lookup(&m, "zzz"));
    assert_null(aliases_lookup(&m, ""));
    aliases_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_user_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_every_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backslash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_include_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_virtusertable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_luser_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_edge_cases, setup, teardown),
        cmocka_unit_test(test_parse_targets),
        cmocka_unit_test(test_lookup_sorted),
        cmocka_unit_test_setup_teardown(test_known, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
