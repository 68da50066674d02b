/* harness.c -- implementation of the test harness (see harness.h). */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

int t_failed_now;
static int n_pass, n_fail, n_selected;
static char tmpdir[256];
static char pathbuf[4][1024];
static int pathidx;

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "#   %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    t_failed_now = 1;
}

void t_run(const char *name, void (*fn)(void))
{
    /* T_CASE=substring runs only the cases whose name contains it, so one
     * failing case can be rerun (or debugged) alone. */
    const char *only = getenv("T_CASE");
    if (only && *only && !strstr(name, only))
        return;
    n_selected++;
    t_failed_now = 0;
    fn();
    if (t_failed_now) {
        n_fail++;
        printf("not ok - %s\n", name);
    } else {
        n_pass++;
        printf("ok - %s\n", name);
    }
    fflush(stdout);
}

void t_tmpdir_remove(void)
{
    const char *only = getenv("T_CASE");
    if (only && *only && n_selected == 0) {
        printf("not ok - T_CASE=\"%s\" names no test case of this file\n", only);
        n_fail++;
    }
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", tmpdir);
        tmpdir[0] = 0;
    }
}

int t_done(void)
{
    t_tmpdir_remove();
    printf("# %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

const char *t_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "%s/cctest.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(99);
        }
    }
    return tmpdir;
}

static const char *join(const char *env, const char *dflt, const char *name)
{
    const char *dir = getenv(env);
    char *p = pathbuf[pathidx++ % 4];
    snprintf(p, sizeof pathbuf[0], "%s/%s", dir ? dir : dflt, name);
    return p;
}

const char *t_data(const char *name)
{
    return join("CC_TEST_DATA", "test/data", name);
}
const char *t_bin(const char *name)
{
    return join("CC_BIN", "build/bin", name);
}
