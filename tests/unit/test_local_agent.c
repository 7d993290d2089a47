/*
 * core/local_agent: the parent's check of a local delivery request is the security
 * boundary between the engine and the users. A forged request cannot make the parent write
 * outside the user's mailbox, run a program outside smrsh_dir, run a program or write a file
 * that is not in the aliases (or, checked again by the agent, in the user's .forward), or
 * act as root; a .forward is read only when sendmail would trust it; and the privsep
 * channel carries a request and its two descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "compat/map_aliases.h"
#include "core/local_agent.h"
#include "core/privsep.h"
#include "util/log.h"

static char test_dir[] = "/tmp/ringmail-local-agent-XXXXXX";

static const struct local_agent_user test_users[] = {
    {.uid = 0, .gid = 0, .login = "root", .home = "/root", .shell = "/bin/sh"},
    {.uid = 1, .gid = 1, .login = "daemon", .home = "/usr/sbin", .shell = "/usr/sbin/nologin"},
    {.uid = 1000, .gid = 1000, .login = "alice", .home = "/home/alice", .shell = "/bin/sh"},
    {.uid = 1001, .gid = 1001, .login = "bob", .home = "/home/bob", .shell = "/bin/sh"},
    {.uid = 1002, .gid = 1002, .login = "mallory", .home = "/home/mallory", .shell = "/bin/false"},
    {.uid = 0, .gid = 0, .login = "toor", .home = "/root", .shell = "/bin/sh"},
};

static int test_getpw(void *arg, const char *login, struct local_agent_user *u)
{
    (void)arg;
    for (size_t i = 0; i < sizeof(test_users) / sizeof(test_users[0]); i++)
        if (strcmp(test_users[i].login, login) == 0) {
            *u = test_users[i];
            return 0;
        }
    errno = 0;
    return -1;
}

static struct config cfg;
static char *forward_path[] = {"$z/.forward+$h", "$z/.forward"};

static void test_cfg_reset(void)
{
    cfg.hostname = "mx.example.org";
    cfg.local.mailbox = "/var/mail/$u";
    cfg.local.local_path = NULL;
    cfg.local.local_args = NULL;
    cfg.local.default_user = "daemon";
    cfg.local.smrsh_dir = NULL;
    cfg.local.forward_path = forward_path;
    cfg.local.n_forward_path = 2;
    cfg.local.timeout_ms = 600000;
    cfg.local.max_agents = 20;
}

static int test_setup(void **state)
{
    (void)state;
    static struct alias_map aliases;
    static const char text[] = "archive: /var/spool/archive\n"
                               "vacation: \"|/usr/bin/vacation -a list\"\n"
                               "smrshed: \"|exec procmail -m /etc/procmailrc\"\n";
    char err[256];
    if (aliases_parse("aliases", text, sizeof(text) - 1, &aliases, err, sizeof(err)) < 0)
        return -1;
    cfg.map.aliases = &aliases;
    cfg.map.n_aliases = 1;
    test_cfg_reset();
    return mkdtemp(test_dir) ? 0 : -1;
}

static int test_teardown(void **state)
{
    (void)state;
    aliases_free(cfg.map.aliases);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", test_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct local_request test_request(enum local_op op, uint32_t flags, const char *user,
                                         const char *target)
{
    struct local_request rq = {.version = LOCAL_PROTO_VERSION, .op = op, .flags = flags};
    snprintf(rq.qid, sizeof(rq.qid), "4XyZ0001");
    snprintf(rq.user, sizeof(rq.user), "%s", user);
    snprintf(rq.sender, sizeof(rq.sender), "sender@example.com");
    snprintf(rq.recipient, sizeof(rq.recipient), "%s@example.org", user[0] ? user : "list");
    snprintf(rq.target, sizeof(rq.target), "%s", target);
    return rq;
}

/* Checks `rq` as a root parent (self 0) unless told: 0 or -1 with the refusal. */
static struct local_agent_plan plan;
static struct local_reply refusal;

static int test_check_as(uid_t self, const struct local_request *rq)
{
    struct local_agent_ctx ctx = {.cfg = &cfg, .getpw = test_getpw, .self = self};
    memset(&refusal, 0, sizeof(refusal));
    return local_agent_check(&ctx, rq, &plan, &refusal);
}

static int test_check(const struct local_request *rq)
{
    return test_check_as(0, rq);
}

static void test_refused(const struct local_request *rq, enum local_status status, const char *enh,
                         const char *text)
{
    assert_int_equal(test_check(rq), -1);
    assert_int_equal(refusal.status, status);
    assert_string_equal(refusal.enh, enh);
    if (text && !strstr(refusal.text, text))
        fail_msg("refusal \"%s\" lacks \"%s\"", refusal.text, text);
}

static const char *test_arg(size_t i)
{
    const char *a = plan.args;
    assert_true(i < plan.argc);
    while (i--)
        a += strlen(a) + 1;
    return a;
}

static void test_mailbox_plans(void **state)
{
    (void)state;
    test_cfg_reset();
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.mailer, LOCAL_AGENT_MBOX);
    assert_string_equal(plan.path, "/var/mail/alice");
    assert_int_equal(plan.as.uid, 1000);
    assert_true(plan.change_identity);
    assert_true(plan.read_forward);
    assert_false(plan.forward_must_name);

    rq.flags = LOCAL_F_NO_FORWARD;
    assert_int_equal(test_check(&rq), 0);
    assert_false(plan.read_forward);

    cfg.local.mailbox = "Maildir/";
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.mailer, LOCAL_AGENT_MAILDIR);
    assert_string_equal(plan.path, "/home/alice/Maildir/");

    /* LOCAL_MAILER_PATH/ARGS as FEATURE(local_procmail) sets them */
    cfg.local.local_path = "/usr/bin/procmail";
    cfg.local.local_args = "procmail -Y -a $h -d $u";
    snprintf(rq.detail, sizeof(rq.detail), "lists");
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.mailer, LOCAL_AGENT_PROGRAM);
    assert_string_equal(plan.mailer_name, "procmail");
    assert_int_equal(plan.argc, 6);
    const char *want[] = {"/usr/bin/procmail", "-Y", "-a", "lists", "-d", "alice"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(test_arg(i), want[i]);
    assert_false(plan.from_line);
    assert_true(plan.return_path);
    test_cfg_reset();
}

/* The engine names only the user: nothing it sends can move the mailbox. */
static void test_forged_mailbox(void **state)
{
    (void)state;
    test_cfg_reset();
    const char *users[] = {"../../etc/passwd", "alice/../bob", ".alice", "",
                           "nosuchuser",       "-alice"};
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, users[i], "");
        test_refused(&rq, LOCAL_FAILED, "5.1.1", "User unknown");
    }
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "/etc/passwd");
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "no target");
    /* a +detail reaches the forward path ($h) and procmail's argv, never a directory */
    rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    snprintf(rq.detail, sizeof(rq.detail), "../../../etc/shadow");
    test_refused(&rq, LOCAL_FAILED, "5.1.1", NULL);
    /* an alias flag on a mailbox, unknown flags, ops and versions */
    rq = test_request(LOCAL_OP_MAILBOX, LOCAL_F_ALIAS, "alice", "");
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
    rq = test_request(LOCAL_OP_MAILBOX, 0x80, "alice", "");
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
    rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    rq.op = 7;
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
    rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    rq.version = LOCAL_PROTO_VERSION + 1;
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
}

/* Unterminated fields and line breaks (a forged From_ line or header) are refused. */
static void test_forged_fields(void **state)
{
    (void)state;
    test_cfg_reset();
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    memset(rq.user, 'a', sizeof(rq.user));
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
    rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    memset(rq.sender, 'x', sizeof(rq.sender));
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
    rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/usr/bin/vacation -a list");
    memset(rq.target, 'x', sizeof(rq.target));
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
    rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    snprintf(rq.sender, sizeof(rq.sender), "a@b\nFrom evil");
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
    rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    snprintf(rq.detail, sizeof(rq.detail), "x\r");
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "malformed");
}

/* Programs and files come only from the aliases the parent read (or a user's .forward). */
static void test_alias_targets(void **state)
{
    (void)state;
    test_cfg_reset();
    struct local_request rq =
        test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/usr/bin/vacation -a list");
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.mailer, LOCAL_AGENT_PROGRAM);
    assert_int_equal(plan.as.uid, 1); /* DefaultUser, never root */
    assert_false(plan.forward_must_name);
    assert_int_equal(plan.argc, 3);
    assert_string_equal(test_arg(0), "/bin/sh");
    assert_string_equal(test_arg(1), "-c");
    assert_string_equal(test_arg(2), "/usr/bin/vacation -a list");
    assert_true(plan.from_line);

    rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/bin/sh -c 'rm -rf /'");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "not in the aliases");
    /* a file target is not a program target, nor the other way round */
    rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/var/spool/archive");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "not in the aliases");
    rq = test_request(LOCAL_OP_FILE, LOCAL_F_ALIAS, "", "/usr/bin/vacation -a list");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "not in the aliases");
    rq = test_request(LOCAL_OP_FILE, LOCAL_F_ALIAS, "", "/etc/passwd");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "not in the aliases");
    /* an :include: list the parent read is part of the aliases; one it could not read is not */
    static char inc_text[] = "owner@example.org, \"|/usr/local/bin/archiver list\"\n";
    struct config_include inc = {
        .path = "/etc/mail/list.inc", .text = inc_text, .len = sizeof(inc_text) - 1};
    cfg.map.includes = &inc;
    cfg.map.n_includes = 1;
    rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/usr/local/bin/archiver list");
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.as.uid, 1);
    inc.err = EACCES;
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "not in the aliases");
    cfg.map.includes = NULL;
    cfg.map.n_includes = 0;
    /* the user field cannot smuggle another identity in for an alias target */
    rq = test_request(LOCAL_OP_FILE, LOCAL_F_ALIAS, "root", "/var/spool/archive");
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.mailer, LOCAL_AGENT_FILE);
    assert_string_equal(plan.path, "/var/spool/archive");
    assert_int_equal(plan.as.uid, 1);

    /* without LOCAL_F_ALIAS: the user's own, checked again against the .forward */
    rq = test_request(LOCAL_OP_FILE, 0, "alice", "/home/alice/archive");
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.as.uid, 1000);
    assert_true(plan.forward_must_name);
    assert_false(plan.read_forward);
    rq = test_request(LOCAL_OP_FILE, 0, "alice", "archive");
    test_refused(&rq, LOCAL_FAILED, "5.3.0", "absolute");
    rq = test_request(LOCAL_OP_PROGRAM, 0, "nosuchuser", "/bin/true");
    test_refused(&rq, LOCAL_FAILED, "5.1.1", "User unknown");
    /* sendmail: no programs or files for a user whose shell is not in /etc/shells */
    rq = test_request(LOCAL_OP_PROGRAM, 0, "mallory", "/bin/true");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "unsafe shell");
}

/* Nothing runs as uid 0: root's mail and alias targets run as DefaultUser. */
static void test_never_root(void **state)
{
    (void)state;
    test_cfg_reset();
    const char *roots[] = {"root", "toor"};
    for (size_t i = 0; i < 2; i++) {
        struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, roots[i], "");
        assert_int_equal(test_check(&rq), 0);
        assert_int_equal(plan.as.uid, 1);
        assert_string_equal(plan.as.login, "daemon");
        assert_int_equal(plan.rcpt.uid, 0); /* root's mailbox and .forward, as daemon */
        assert_string_equal(plan.path, i == 0 ? "/var/mail/root" : "/var/mail/toor");
        rq = test_request(LOCAL_OP_PROGRAM, 0, roots[i], "/bin/true");
        assert_int_equal(test_check(&rq), 0);
        assert_int_equal(plan.as.uid, 1);
    }
    char *defaults[] = {"root", "0:0", "toor:daemon", "0"};
    for (size_t i = 0; i < 4; i++) {
        cfg.local.default_user = defaults[i];
        struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "root", "");
        test_refused(&rq, LOCAL_DEFERRED, "4.3.0", "root");
        rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/usr/bin/vacation -a list");
        test_refused(&rq, LOCAL_DEFERRED, "4.3.0", "root");
    }
    cfg.local.default_user = "1:1";
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "root", "");
    assert_int_equal(test_check(&rq), 0);
    assert_int_equal(plan.as.uid, 1);
    assert_int_equal(plan.as.gid, 1);
    cfg.local.default_user = "nosuchuser";
    test_refused(&rq, LOCAL_DEFERRED, "4.3.0", "no such user");
    test_cfg_reset();
}

/* FEATURE(smrsh): only programs in smrsh_dir, run from there, no shell tricks. */
static void test_smrsh(void **state)
{
    (void)state;
    test_cfg_reset();
    char dir[300], prog[320];
    snprintf(dir, sizeof(dir), "%s/smrsh", test_dir);
    snprintf(prog, sizeof(prog), "%s/vacation", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    int fd = open(prog, O_WRONLY | O_CREAT | O_EXCL, 0755);
    assert_true(fd >= 0);
    close(fd);
    cfg.local.smrsh_dir = dir;

    struct local_request rq =
        test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/usr/bin/vacation -a list");
    assert_int_equal(test_check(&rq), 0);
    char want[400];
    snprintf(want, sizeof(want), "%s -a list", prog);
    assert_string_equal(test_arg(2), want);

    rq = test_request(LOCAL_OP_PROGRAM, 0, "alice", "exec vacation alice");
    assert_int_equal(test_check(&rq), 0);
    snprintf(want, sizeof(want), "%s alice", prog);
    assert_string_equal(test_arg(2), want);

    rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "exec procmail -m /etc/procmailrc");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "smrsh: \"procmail\" not available for sendmail");
    rq = test_request(LOCAL_OP_PROGRAM, 0, "alice", "/bin/rm -rf /home/alice");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "\"rm\" not available for sendmail programs");
    const char *tricks[] = {"vacation; rm -rf /",     "vacation `id`", "vacation $(id)",
                            "vacation > /etc/passwd", "vacation | sh", "vacation && sh",
                            "vacation \xbb x"};
    for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        rq = test_request(LOCAL_OP_PROGRAM, 0, "alice", tricks[i]);
        test_refused(&rq, LOCAL_FAILED, "5.7.1", "smrsh: cannot use");
    }
    /* a directory or a name that climbs out is not a program in smrsh_dir */
    rq = test_request(LOCAL_OP_PROGRAM, 0, "alice", "..");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "not available");
    rq = test_request(LOCAL_OP_PROGRAM, 0, "alice", "   ");
    test_refused(&rq, LOCAL_FAILED, "5.7.1", "not available");
    test_cfg_reset();
}

/* Started as a user, the parent delivers only as itself. */
static void test_unprivileged(void **state)
{
    (void)state;
    test_cfg_reset();
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");
    assert_int_equal(test_check_as(1000, &rq), 0);
    assert_false(plan.change_identity);
    rq = test_request(LOCAL_OP_MAILBOX, 0, "bob", "");
    assert_int_equal(test_check_as(1000, &rq), -1);
    assert_int_equal(refusal.status, LOCAL_DEFERRED);
    assert_string_equal(refusal.enh, "4.3.0");
    assert_non_null(strstr(refusal.text, "does not run as root"));
    rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/usr/bin/vacation -a list");
    assert_int_equal(test_check_as(1000, &rq), -1);
    assert_string_equal(refusal.enh, "4.3.0");
}

static void test_forward_names(void **state)
{
    (void)state;
    static const char text[] = "# vacation, then keep a copy\n"
                               "\\alice, \"|/usr/bin/vacation alice\"\n"
                               "\n"
                               "  /home/alice/archive\n"
                               "#\"|/bin/evil\"\n";
    size_t len = sizeof(text) - 1;
    assert_true(local_agent_forward_names(text, len, LOCAL_OP_PROGRAM, "/usr/bin/vacation alice"));
    assert_true(local_agent_forward_names(text, len, LOCAL_OP_FILE, "/home/alice/archive"));
    assert_false(local_agent_forward_names(text, len, LOCAL_OP_PROGRAM, "/bin/evil"));
    assert_false(local_agent_forward_names(text, len, LOCAL_OP_FILE, "/usr/bin/vacation alice"));
    assert_false(local_agent_forward_names(text, len, LOCAL_OP_PROGRAM, "/home/alice/archive"));
    assert_false(local_agent_forward_names(text, len, LOCAL_OP_PROGRAM, "/usr/bin/vacation"));
    assert_false(local_agent_forward_names("", 0, LOCAL_OP_FILE, "/home/alice/archive"));
}

static void test_write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* sendmail's rules for a .forward it trusts (as the user; the test's own files). */
static void test_read_forward(void **state)
{
    (void)state;
    test_cfg_reset();
    char home[300], fwd[320], fwd_detail[330], text[64];
    snprintf(home, sizeof(home), "%s/home", test_dir);
    snprintf(fwd, sizeof(fwd), "%s/.forward", home);
    snprintf(fwd_detail, sizeof(fwd_detail), "%s/.forward+lists", home);
    assert_int_equal(mkdir(home, 0755), 0);
    struct local_agent_plan p = {0};
    p.rcpt.uid = getuid();
    snprintf(p.rcpt.home, sizeof(p.rcpt.home), "%s", home);
    snprintf(p.rcpt.login, sizeof(p.rcpt.login), "alice");
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", "");

    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 0);
    test_write_file(fwd, "bob@example.com\n", 0644);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 1);
    assert_string_equal(text, "bob@example.com\n");
    /* $h: the +detail's own forward first; none without a detail */
    test_write_file(fwd_detail, "\"|/usr/bin/list\"\n", 0600);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 1);
    assert_string_equal(text, "bob@example.com\n");
    snprintf(rq.detail, sizeof(rq.detail), "lists");
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 1);
    assert_string_equal(text, "\"|/usr/bin/list\"\n");
    assert_int_equal(unlink(fwd_detail), 0);
    /* group or world writable: skipped */
    assert_int_equal(chmod(fwd, 0664), 0);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 0);
    assert_int_equal(chmod(fwd, 0646), 0);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 0);
    assert_int_equal(chmod(fwd, 0644), 0);
    /* in a group-writable directory: skipped; a sticky one (/tmp) is fine */
    assert_int_equal(chmod(home, 0775), 0);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 0);
    assert_int_equal(chmod(home, 01777), 0);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 1);
    assert_int_equal(chmod(home, 0755), 0);
    /* owned by someone else, root included (issue 11: a root-owned .forward of another
     * user is never followed) */
    p.rcpt.uid = getuid() + 1;
    if (getuid() == 0)
        assert_int_equal(chown(fwd, 4242, 4242), 0);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 0);
    if (getuid() == 0) {
        assert_int_equal(chown(fwd, 0, 0), 0);
        p.rcpt.uid = 4242;
        assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 0);
        assert_int_equal(chown(fwd, 4242, 4242), 0);
    }
    p.rcpt.uid = getuid() == 0 ? 4242 : getuid();
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 1);
    /* a symbolic link to a file the user could not name: skipped */
    char target[330];
    snprintf(target, sizeof(target), "%s/elsewhere", test_dir);
    assert_int_equal(rename(fwd, target), 0);
    assert_int_equal(symlink(target, fwd), 0);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), 0);
    assert_int_equal(unlink(fwd), 0);
    /* too large to pass on: an error, not a silently cut list */
    test_write_file(fwd,
                    "a-rather-long-address-list@example.com, another@example.com\n"
                    "and-a-third@example.com\n",
                    0644);
    if (getuid() == 0)
        assert_int_equal(chown(fwd, 4242, 4242), 0);
    assert_int_equal(local_agent_read_forward(&cfg, &p, &rq, text, sizeof(text)), -1);
}

/* The local channel carries the request and exactly its two descriptors. */
static void test_privsep_payload(void **state)
{
    (void)state;
    int sv[2], pair[2];
    assert_int_equal(privsep_pair(sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, "alice", ""), got = {0};
    int fds[2] = {pair[0], pair[1]}, in[PRIVSEP_MAX_FDS];
    size_t nfds;
    assert_int_equal(privsep_send_payload(sv[1], &rq, sizeof(rq), fds, 2), 0);
    assert_int_equal(privsep_recv_payload(sv[0], &got, sizeof(got), in, &nfds, MSG_DONTWAIT),
                     (ssize_t)sizeof(got));
    assert_int_equal(nfds, 2);
    assert_memory_equal(&got, &rq, sizeof(rq));
    assert_int_equal(fcntl(in[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    close(in[0]);
    close(in[1]);
    /* nothing waiting: not an error that closes the channel */
    assert_int_equal(privsep_recv_payload(sv[0], &got, sizeof(got), in, &nfds, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    /* longer than expected: refused, its descriptors closed */
    char big[sizeof(rq) + 8] = {0};
    assert_int_equal(privsep_send_payload(sv[1], big, sizeof(big), fds, 1), 0);
    assert_int_equal(privsep_recv_payload(sv[0], &got, sizeof(got), in, &nfds, 0), -1);
    assert_int_equal(errno, EPROTO);
    assert_int_equal(nfds, 0);
    /* the control messages still work on top */
    uint32_t type;
    uint64_t value;
    int fd;
    assert_int_equal(privsep_send(sv[1], PRIVSEP_READY, -1), 0);
    assert_int_equal(privsep_recv(sv[0], &type, &value, &fd), 1);
    assert_int_equal(type, PRIVSEP_READY);
    assert_int_equal(value, 0);
    assert_int_equal(fd, -1);
    assert_int_equal(privsep_send_value(sv[1], PRIVSEP_RECOVERED, 123456789012ull), 0);
    assert_int_equal(privsep_recv(sv[0], &type, &value, &fd), 1);
    assert_int_equal(type, PRIVSEP_RECOVERED);
    assert_int_equal(value, 123456789012ull);
    assert_int_equal(fd, -1);
    assert_int_equal(privsep_send_payload(sv[1], &type, sizeof(type), fds, 2), 0);
    assert_int_equal(privsep_recv(sv[0], &type, &value, &fd),
                     -1); /* two descriptors: not a control */
    assert_int_equal(fd, -1);
    close(sv[1]);
    assert_int_equal(privsep_recv_payload(sv[0], &got, sizeof(got), in, &nfds, 0), 0);
    close(sv[0]);
    close(pair[0]);
    close(pair[1]);
}

/* A forged request through the parent's serving path is answered by the parent, no agent. */
static void test_serve_refusal(void **state)
{
    (void)state;
    test_cfg_reset();
    struct local_agents *la = local_agents_new(LOG_TO_STDERR);
    assert_non_null(la);
    local_agents_configure(la, &cfg);
    int sv[2], reply[2];
    assert_int_equal(privsep_pair(sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, reply), 0);
    char df[330];
    snprintf(df, sizeof(df), "%s/df", test_dir);
    test_write_file(df, "Subject: x\r\n\r\nbody\r\n", 0600);
    int dfd = open(df, O_RDONLY);
    assert_true(dfd >= 0);
    struct local_request rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", "/bin/sh -i");
    int fds[2] = {dfd, reply[1]};
    assert_int_equal(privsep_send_payload(sv[1], &rq, sizeof(rq), fds, 2), 0);
    assert_int_equal(local_agents_serve(la, sv[0]), 0);
    assert_int_equal(local_agents_running(la), 0);
    struct local_reply r;
    assert_int_equal(recv(reply[0], &r, sizeof(r), MSG_DONTWAIT), (ssize_t)sizeof(r));
    assert_int_equal(r.status, LOCAL_FAILED);
    assert_string_equal(r.enh, "5.7.1");
    /* a request without its descriptors: dropped, nothing to answer on */
    assert_int_equal(privsep_send_payload(sv[1], &rq, sizeof(rq), NULL, 0), 0);
    assert_int_equal(local_agents_serve(la, sv[0]), 0);
    assert_int_equal(local_agents_serve(la, sv[0]), 0); /* nothing waiting */
    close(sv[1]);
    assert_int_equal(local_agents_serve(la, sv[0]), -1);
    assert_false(local_agents_reaped(la, 12345, 0));
    close(sv[0]);
    close(reply[0]);
    close(reply[1]);
    close(dfd);
    local_agents_free(la);
}

/* One request through the parent's path to a real agent: the reply it writes, then the
 * agent's word that it is free again (it stays, for the next request of its user). */
static struct local_reply test_agent(struct local_agents *la, const struct local_request *rq,
                                     const char *df)
{
    int sv[2], reply[2];
    assert_int_equal(privsep_pair(sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, reply), 0);
    int dfd = open(df, O_RDONLY | O_CLOEXEC);
    assert_true(dfd >= 0);
    int fds[2] = {dfd, reply[1]};
    assert_int_equal(privsep_send_payload(sv[1], rq, sizeof(*rq), fds, 2), 0);
    close(dfd);
    close(reply[1]);
    assert_int_equal(local_agents_serve(la, sv[0]), 0);
    struct local_reply r = {0};
    struct pollfd pfd = {reply[0], POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 60000), 1);
    ssize_t n = recv(reply[0], &r, sizeof(r), 0);
    assert_int_equal(n, (ssize_t)sizeof(r));
    pfd = (struct pollfd){local_agents_fd(la), POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 60000), 1);
    local_agents_events(la);
    close(reply[0]);
    close(sv[0]);
    close(sv[1]);
    return r;
}

/* The agents end when the parent lets them go, idle ones before it returns: no child left
 * behind (one would keep its user from being removed). */
static void test_agents_end(struct local_agents *la)
{
    local_agents_free(la);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static bool test_shell_listed(const char *shell)
{
    bool ok = false;
    setusershell();
    for (const char *s; !ok && (s = getusershell());)
        ok = strcmp(s, shell) == 0;
    endusershell();
    return ok;
}

/* As root: a user with a login shell (programs from a .forward need one), else nobody. */
static const struct passwd *test_agent_user(void)
{
    if (getuid() != 0)
        return getpwuid(getuid());
    const struct passwd *pw;
    setpwent();
    while ((pw = getpwent()) && (pw->pw_uid == 0 || pw->pw_uid == 65534 || !pw->pw_shell ||
                                 !test_shell_listed(pw->pw_shell)))
        ;
    endpwent();
    return pw ? pw : getpwnam("nobody");
}

/* The agent: becomes the user (as root: test_agent_user; else the test's own user), writes
 * the mailbox, hands back a .forward, runs a .forward's program only when the .forward names
 * it, runs an alias's program as DefaultUser. */
static void test_agent_delivers(void **state)
{
    (void)state;
    test_cfg_reset();
    const struct passwd *pw = test_agent_user();
    if (!pw)
        skip();
    char login[64], shell[256];
    uid_t uid = pw->pw_uid;
    snprintf(login, sizeof(login), "%s", pw->pw_name);
    snprintf(shell, sizeof(shell), "%s", pw->pw_shell ? pw->pw_shell : "");
    const struct passwd *dpw = getpwnam("daemon");
    uid_t daemon_uid = dpw ? dpw->pw_uid : 1;

    char mail[300], fwd[300], out[300], df[300], box_tmpl[320], fwd_tmpl[320];
    snprintf(mail, sizeof(mail), "%s/mail", test_dir);
    snprintf(fwd, sizeof(fwd), "%s/fwd", test_dir);
    snprintf(out, sizeof(out), "%s/out", test_dir);
    snprintf(df, sizeof(df), "%s/df-agent", test_dir);
    assert_int_equal(chmod(test_dir, 0755), 0);
    assert_int_equal(mkdir(mail, 0755), 0);
    assert_int_equal(chmod(mail, 01777), 0);
    assert_int_equal(mkdir(fwd, 0755), 0);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(chmod(out, 01777), 0);
    test_write_file(df, "Subject: hi\r\n\r\nFrom the start\r\nbody\r\n", 0644);
    snprintf(box_tmpl, sizeof(box_tmpl), "%s/$u", mail);
    snprintf(fwd_tmpl, sizeof(fwd_tmpl), "%s/$u", fwd);
    char *fwd_path[] = {fwd_tmpl};
    cfg.local.mailbox = box_tmpl;
    cfg.local.forward_path = fwd_path;
    cfg.local.n_forward_path = 1;
    struct local_agents *la = local_agents_new(LOG_TO_STDERR);
    assert_non_null(la);
    local_agents_configure(la, &cfg);

    /* the mailbox, written as the user */
    struct local_request rq = test_request(LOCAL_OP_MAILBOX, 0, login, "");
    struct local_reply r = test_agent(la, &rq, df);
    assert_int_equal(r.status, LOCAL_DELIVERED);
    assert_string_equal(r.mailer, "local");
    char box[400], text[512] = "";
    snprintf(box, sizeof(box), "%s/%s", mail, login);
    struct stat st;
    assert_int_equal(stat(box, &st), 0);
    assert_int_equal(st.st_uid, uid);
    FILE *f = fopen(box, "r");
    assert_non_null(f);
    size_t got = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[got] = '\0';
    assert_non_null(strstr(text, "From sender@example.com "));
    assert_non_null(strstr(text, "\n>From the start\nbody\n"));

    /* a .forward: its text goes back to the engine */
    char fwd_file[400], ran[400], fwd_text[600], cmd[500];
    snprintf(fwd_file, sizeof(fwd_file), "%s/%s", fwd, login);
    snprintf(ran, sizeof(ran), "%s/ran", out);
    /* and the program inherits neither the df nor the reply socket */
    snprintf(cmd, sizeof(cmd),
             "test ! -e /proc/self/fd/3 && test ! -e /proc/self/fd/4 && /usr/bin/touch %s", ran);
    snprintf(fwd_text, sizeof(fwd_text), "\\%s, \"|%s\"\n", login, cmd);
    test_write_file(fwd_file, fwd_text, 0644);
    assert_int_equal(chown(fwd_file, uid, (gid_t)-1), 0); /* the user's own, as sendmail wants */
    r = test_agent(la, &rq, df);
    assert_int_equal(r.status, LOCAL_FORWARD);
    assert_string_equal(r.forward, fwd_text);
    rq.flags = LOCAL_F_NO_FORWARD;
    r = test_agent(la, &rq, df);
    assert_int_equal(r.status, LOCAL_DELIVERED);

    /* the .forward's program as the user; one it does not name is refused by the agent */
    rq = test_request(LOCAL_OP_PROGRAM, 0, login, cmd);
    r = test_agent(la, &rq, df);
    if (!test_shell_listed(shell[0] ? shell : "/bin/sh")) {
        assert_int_equal(r.status, LOCAL_FAILED);
        assert_non_null(strstr(r.text, "unsafe shell"));
    } else {
        assert_int_equal(r.status, LOCAL_DELIVERED);
        assert_string_equal(r.mailer, "prog");
        assert_int_equal(stat(ran, &st), 0);
        assert_int_equal(st.st_uid, uid);
        assert_int_equal(unlink(ran), 0);
        rq = test_request(LOCAL_OP_PROGRAM, 0, login, "/usr/bin/touch /tmp/forged");
        r = test_agent(la, &rq, df);
        assert_int_equal(r.status, LOCAL_FAILED);
        assert_string_equal(r.enh, "5.7.1");
        assert_non_null(strstr(r.text, "not in the .forward"));
    }

    /* every request of the user went to one agent, still there for the next */
    assert_int_equal(local_agents_running(la), 1);

    /* an alias's program: as DefaultUser (root only: a user cannot become daemon) */
    struct alias_map *saved = cfg.map.aliases, aliases = {0};
    char alias_text[600], err[256];
    snprintf(alias_text, sizeof(alias_text), "toucher: \"|%s\"\n", cmd);
    assert_int_equal(
        aliases_parse("aliases", alias_text, strlen(alias_text), &aliases, err, sizeof(err)), 0);
    cfg.map.aliases = &aliases;
    rq = test_request(LOCAL_OP_PROGRAM, LOCAL_F_ALIAS, "", cmd);
    r = test_agent(la, &rq, df);
    if (getuid() == 0) {
        assert_int_equal(r.status, LOCAL_DELIVERED);
        assert_int_equal(stat(ran, &st), 0);
        assert_int_equal(st.st_uid, daemon_uid);
    } else {
        assert_int_equal(r.status, LOCAL_DEFERRED);
        assert_string_equal(r.enh, "4.3.0");
    }
    cfg.map.aliases = saved;
    aliases_free(&aliases);
    test_agents_end(la);
    test_cfg_reset();
}

/* A request that waited in the parent while the engine gave up on it (the engine closed its
 * end of the reply socket: its limit passed, the recipient is deferred) is dropped, not
 * delivered: the retry delivers it, once. Here the user's mailbox is locked by the test, the
 * one agent (mailers.max_agents 1) waits on it with the first request, and the second waits
 * in the parent until the engine's end of its reply socket is closed. */
static void test_abandoned_request_dropped(void **state)
{
    (void)state;
    test_cfg_reset();
    const struct passwd *pw = test_agent_user();
    if (!pw || getuid() != 0)
        skip(); /* the mailbox is the user's: the agent must become them */
    uid_t uid = pw->pw_uid;
    char login[64], mail[300], box_tmpl[320], box[400], df[300];
    snprintf(login, sizeof(login), "%s", pw->pw_name);
    snprintf(mail, sizeof(mail), "%s/mail-abandoned", test_dir);
    snprintf(df, sizeof(df), "%s/df-abandoned", test_dir);
    assert_int_equal(chmod(test_dir, 0755), 0);
    assert_int_equal(mkdir(mail, 01777), 0);
    assert_int_equal(chmod(mail, 01777), 0);
    test_write_file(df, "Subject: once\r\n\r\nbody\r\n", 0644);
    snprintf(box_tmpl, sizeof(box_tmpl), "%s/$u", mail);
    snprintf(box, sizeof(box), "%s/%s", mail, login);
    test_write_file(box, "", 0600);
    assert_int_equal(chown(box, uid, (gid_t)-1), 0);
    int lock_fd = open(box, O_RDWR);
    assert_true(lock_fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(lock_fd, F_SETLK, &fl), 0);
    cfg.local.mailbox = box_tmpl;
    cfg.local.max_agents = 1;
    struct local_agents *la = local_agents_new(LOG_TO_STDERR);
    assert_non_null(la);
    local_agents_configure(la, &cfg);

    struct local_request rq = test_request(LOCAL_OP_MAILBOX, LOCAL_F_NO_FORWARD, login, "");
    int sv[2], reply[2][2];
    assert_int_equal(privsep_pair(sv), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, reply[i]), 0);
        int dfd = open(df, O_RDONLY | O_CLOEXEC);
        assert_true(dfd >= 0);
        int fds[2] = {dfd, reply[i][1]};
        assert_int_equal(privsep_send_payload(sv[1], &rq, sizeof(rq), fds, 2), 0);
        close(dfd);
        close(reply[i][1]);
        assert_int_equal(local_agents_serve(la, sv[0]), 0);
    }
    close(reply[1][0]); /* the engine gives up on the second */
    fl.l_type = F_UNLCK;
    assert_int_equal(fcntl(lock_fd, F_SETLK, &fl), 0);
    struct local_reply r;
    struct pollfd pfd = {reply[0][0], POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 60000), 1);
    assert_int_equal(recv(reply[0][0], &r, sizeof(r), 0), (ssize_t)sizeof(r));
    assert_int_equal(r.status, LOCAL_DELIVERED);
    /* the agent says it is free: the parent dispatches what waits; then anything the agent
     * would do with the second has 2 s to show */
    for (int round = 0; round < 2; round++) {
        pfd = (struct pollfd){local_agents_fd(la), POLLIN, 0};
        if (poll(&pfd, 1, round ? 2000 : 60000) == 1)
            local_agents_events(la);
    }
    char text[4096] = "";
    FILE *f = fopen(box, "r");
    assert_non_null(f);
    size_t got = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[got] = '\0';
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, "Subject: once")) != NULL; p++)
        n++;
    assert_int_equal(n, 1);
    close(reply[0][0]);
    close(sv[0]);
    close(sv[1]);
    close(lock_fd);
    test_agents_end(la);
    test_cfg_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailbox_plans),
        cmocka_unit_test(test_forged_mailbox),
        cmocka_unit_test(test_forged_fields),
        cmocka_unit_test(test_alias_targets),
        cmocka_unit_test(test_never_root),
        cmocka_unit_test(test_smrsh),
        cmocka_unit_test(test_unprivileged),
        cmocka_unit_test(test_forward_names),
        cmocka_unit_test(test_abandoned_request_dropped),
        cmocka_unit_test(test_read_forward),
        cmocka_unit_test(test_privsep_payload),
        cmocka_unit_test(test_serve_refusal),
        cmocka_unit_test(test_agent_delivers),
    };
    return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
