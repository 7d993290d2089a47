/* Golden files for ringmail-mc2yaml and the map parsers (tests/compat): every NAME.mc is
 * translated (root tests/compat/root, -I tests/compat/inc) and compared byte for byte with
 * NAME.yaml and NAME.report; every maps/NAME.KIND sample is parsed and its dump (or error)
 * compared with maps/NAME.KIND.dump. RINGMAIL_UPDATE_GOLDEN=1 rewrites the expected files
 * instead (check the diff by eye before committing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat/map_access.h"
#include "compat/map_aliases.h"
#include "compat/map_list.h"
#include "compat/map_simple.h"
#include "compat/map_text.h"
#include "compat/mc_translate.h"
#include "util/fileset.h"

static bool update_mode(void)
{
    const char *u = getenv("RINGMAIL_UPDATE_GOLDEN");
    return u && *u && strcmp(u, "0") != 0;
}

/* Compares `got` with the file, or rewrites the file in update mode. */
static void golden(const char *path, const char *got, size_t len)
{
    if (update_mode()) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(got, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        return;
    }
    char *want, err[512];
    size_t wlen;
    if (fileset_read(NULL, path, MAP_FILE_MAX, &want, &wlen, err, sizeof(err)) < 0)
        fail_msg("%s (run with RINGMAIL_UPDATE_GOLDEN=1 to create it)", err);
    if (wlen != len || memcmp(want, got, len) != 0)
        fail_msg("%s differs; got:\n%.*s", path, (int)len, got);
    free(want);
}

static void enter_golden_dir(void)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    assert_non_null(slash);
    strcpy(slash, "/../compat");
    assert_int_equal(chdir(dir), 0);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static void test_mc_golden(void **state)
{
    (void)state;
    enter_golden_dir();
    DIR *d = opendir(".");
    assert_non_null(d);
    const char *dirs[] = {"inc"};
    struct mc_options o = {dirs, 1, "root", false};
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!has_suffix(e->d_name, ".mc"))
            continue;
        char path[512];
        struct mc_result res = {0};
        struct buf report;
        buf_init(&report, 0);
        mc_translate_file(e->d_name, &o, &res);
        mc_report_print(&res.report, &report);
        size_t stem = strlen(e->d_name) - 3;
        snprintf(path, sizeof(path), "%.*s.yaml", (int)stem, e->d_name);
        golden(path, res.yaml.data ? res.yaml.data : "", res.yaml.len);
        snprintf(path, sizeof(path), "%.*s.report", (int)stem, e->d_name);
        golden(path, report.data, report.len);
        /* malformed input never yields YAML; good input always does */
        assert_true((strncmp(e->d_name, "bad_", 4) == 0) == (res.status == MC_STATUS_ERROR));
        buf_free(&report);
        mc_result_free(&res);
        n++;
    }
    closedir(d);
    assert_true(n >= 8);
}

/* Parses one map sample by its extension; its dump, or its error, goes into out. */
static void parse_map(const char *name, const char *text, size_t len, struct buf *out)
{
    char err[512];
    int rc;
    const char *ext = strrchr(name, '.') + 1;
    if (!strcmp(ext, "access")) {
        struct access_map m = {0};
        if ((rc = access_parse(name, text, len, &m, err, sizeof(err))) == 0)
            access_dump(&m, out);
        access_free(&m);
    } else if (!strcmp(ext, "aliases")) {
        struct alias_map m = {0};
        if ((rc = aliases_parse(name, text, len, &m, err, sizeof(err))) == 0)
            aliases_dump(&m, out);
        aliases_free(&m);
    } else if (!strcmp(ext, "list")) {
        struct map_strings m = {0};
        if ((rc = map_list_parse(name, text, len, &m, err, sizeof(err))) == 0)
            map_list_dump(&m, out);
        map_strings_free(&m);
    } else {
        enum map_simple_kind k = !strcmp(ext, "mailertable")     ? MAP_MAILERTABLE
                                 : !strcmp(ext, "virtusertable") ? MAP_VIRTUSERTABLE
                                                                 : MAP_GENERICSTABLE;
        struct map_simple m = {0};
        if ((rc = map_simple_parse(k, name, text, len, &m, err, sizeof(err))) == 0)
            map_simple_dump(&m, out);
        map_simple_free(&m);
    }
    if (rc < 0)
        buf_printf(out, "error: %s\n", err);
}

static void test_map_golden(void **state)
{
    (void)state;
    enter_golden_dir();
    assert_int_equal(chdir("maps"), 0);
    DIR *d = opendir(".");
    assert_non_null(d);
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || has_suffix(e->d_name, ".dump") || !strchr(e->d_name, '.'))
            continue;
        char *text, err[512], path[512];
        size_t len;
        assert_int_equal(fileset_read(NULL, e->d_name, MAP_FILE_MAX, &text, &len, err, sizeof(err)),
                         0);
        struct buf out;
        buf_init(&out, 0);
        parse_map(e->d_name, text, len, &out);
        snprintf(path, sizeof(path), "%s.dump", e->d_name);
        golden(path, out.data ? out.data : "", out.len);
        buf_free(&out);
        free(text);
        n++;
    }
    closedir(d);
    assert_true(n >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mc_golden),
        cmocka_unit_test(test_map_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
