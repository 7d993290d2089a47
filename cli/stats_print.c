#include "cli/stats_print.h"

static bool stats_row_counted(const struct mailstats_row *r)
{
    return r->msgsfr || r->msgsto || r->msgsrej || r->msgsdis || r->msgsqur;
}

/* The columns mailstats gives a row and the T line: K after the bytes unless `program`. */
static void stats_columns(FILE *out, const struct mailstats_row *r, bool program)
{
    const char *k = program ? "" : "K";
    fprintf(out, " %8llu %10llu%s %8llu %10llu%s   %6llu  %6llu  %6llu",
            (unsigned long long)r->msgsfr, (unsigned long long)r->kbytes_from, k,
            (unsigned long long)r->msgsto, (unsigned long long)r->kbytes_to, k,
            (unsigned long long)r->msgsrej, (unsigned long long)r->msgsdis,
            (unsigned long long)r->msgsqur);
}

void stats_print(FILE *out, const struct mailstats_snapshot *snap, const struct stats_print_opts *o)
{
    time_t since = (time_t)snap->since;
    if (o->program) {
        fprintf(out, "%lld %lld\n", (long long)snap->since, (long long)o->now);
    } else {
        char when[64];
        struct tm tm;
        /* ctime()'s form, as mailstats prints it */
        if (!localtime_r(&since, &tm) || !strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm))
            snprintf(when, sizeof(when), "%lld", (long long)snap->since);
        fprintf(out, "Statistics from %s\n", when);
        fprintf(out, " M   msgsfr  bytes_from   msgsto    bytes_to  msgsrej msgsdis msgsqur%s\n",
                o->names ? "  Mailer" : "");
    }
    struct mailstats_row total = {0};
    for (size_t i = 0; i < snap->n_rows; i++) {
        const struct mailstats_row *r = &snap->rows[i];
        if (!stats_row_counted(r))
            continue;
        fprintf(out, "%2u", r->number);
        stats_columns(out, r, o->program);
        if (o->names)
            fprintf(out, "  %s", r->name);
        fputc('\n', out);
        total.msgsfr += r->msgsfr;
        total.kbytes_from += r->kbytes_from;
        total.msgsto += r->msgsto;
        total.kbytes_to += r->kbytes_to;
        total.msgsrej += r->msgsrej;
        total.msgsdis += r->msgsdis;
        total.msgsqur += r->msgsqur;
    }
    if (!o->program)
        fputs("=====================================================================\n", out);
    fputs(" T", out);
    stats_columns(out, &total, o->program);
    fputc('\n', out);
    if (o->program)
        fprintf(out, " C %8llu %8llu %6llu\n", (unsigned long long)snap->conn_from,
                (unsigned long long)snap->conn_to, (unsigned long long)snap->conn_rejected);
    else
        fprintf(out, " C %8llu %10s  %8llu %10s    %6llu\n", (unsigned long long)snap->conn_from,
                "", (unsigned long long)snap->conn_to, "", (unsigned long long)snap->conn_rejected);
}
