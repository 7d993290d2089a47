#include "cli/newaliases.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "compat/map_aliases.h"
#include "compat/map_text.h"
#include "util/fileset.h"

/* sendmail's readaliases() statistics for one logical line (continuations joined as it
 * joins them: the newline removed, the leading white space kept). */
static int newaliases_count_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    (void)r;
    (void)lineno;
    struct newaliases_stats *st = ctx;
    char *colon = strchr(line, ':'); /* aliases_parse() already refused a line without */
    if (!colon)
        return 0;
    const char *name = line, *end = colon;
    while (*name == ' ' || *name == '\t')
        name++;
    while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    const char *rhs = colon + 1;
    while (isspace((unsigned char)*rhs))
        rhs++;
    size_t rhs_len = strlen(rhs);
    st->aliases++;
    st->total += (size_t)(end - name) + rhs_len;
    if (rhs_len > st->longest)
        st->longest = rhs_len;
    return 0;
}

int newaliases_count(const char *file, const char *text, size_t len, struct newaliases_stats *st,
                     char *err, size_t errlen)
{
    struct alias_map map = {0};
    int rc = aliases_parse(file, text, len, &map, err, errlen);
    aliases_free(&map);
    memset(st, 0, sizeof(*st));
    if (rc == 0)
        rc = map_each_line(file, text, len, true, err, errlen, newaliases_count_line, st);
    return rc;
}

/* The running daemon's pid from the pid file, if it names a live ringmaild; else 0. */
static pid_t newaliases_daemon(const struct config *cfg)
{
    char *data = NULL;
    size_t len = 0;
    char why[256];
    if (!cfg->pid_file || fileset_read(NULL, cfg->pid_file, 64, &data, &len, why, sizeof(why)) < 0)
        return 0;
    char *end;
    long pid = strtol(data, &end, 10);
    bool number = end != data && (*end == '\n' || *end == '\0') && pid > 1;
    free(data);
    if (!number)
        return 0;
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    bool ours = fgets(comm, sizeof(comm), f) && strcmp(comm, "ringmaild\n") == 0;
    fclose(f);
    return ours ? (pid_t)pid : 0;
}

/* Tells the daemon to read the maps again, when the caller may. */
static void newaliases_reload(const struct config *cfg, FILE *out)
{
    pid_t pid = newaliases_daemon(cfg);
    if (!pid) {
        fprintf(out, "ringmaild is not running: the aliases are read when it starts\n");
        return;
    }
    const struct passwd *pw = cfg->run_as ? getpwnam(cfg->run_as) : NULL;
    uid_t me = geteuid();
    if (me != 0 && !(pw && pw->pw_uid == me)) {
        fprintf(out,
                "ringmaild (pid %ld) reads the aliases at its next reload (only root or %s may "
                "send it SIGHUP)\n",
                (long)pid, cfg->run_as ? cfg->run_as : "its user");
        return;
    }
    if (kill(pid, SIGHUP) < 0)
        fprintf(out, "ringmaild (pid %ld) not told to reload: %s\n", (long)pid, strerror(errno));
    else
        fprintf(out, "ringmaild (pid %ld) told to read the aliases again (SIGHUP)\n", (long)pid);
}

int newaliases_main(const struct config *cfg, FILE *out, FILE *err)
{
    const struct config_words *files = &cfg->maps.aliases;
    if (files->n == 0) {
        fprintf(err, "newaliases: no aliases file is configured (maps.aliases)\n");
        return EX_OK;
    }
    int status = EX_OK;
    for (size_t i = 0; i < files->n; i++) {
        const char *file = files->v[i];
        char *data = NULL;
        size_t len = 0;
        char why[1024];
        struct newaliases_stats st;
        int rc = fileset_read(NULL, file, MAP_FILE_MAX, &data, &len, why, sizeof(why));
        if (rc < 0) {
            fprintf(err, "newaliases: %s\n", why);
            status = EX_NOINPUT;
        } else if (newaliases_count(file, data, len, &st, why, sizeof(why)) < 0) {
            fprintf(err, "newaliases: %s\n", why);
            if (status == EX_OK)
                status = EX_DATAERR;
        } else {
            fprintf(out, "%s: %zu aliases, longest %zu bytes, %zu bytes total\n", file, st.aliases,
                    st.longest, st.total);
        }
        free(data);
    }
    if (status == EX_OK)
        newaliases_reload(cfg, out);
    return status;
}
