/* harness.h -- the tiny test harness every test/test-*.c uses: named test
 * functions, assertions that say where and why, one "ok"/"not ok" line each. */
#ifndef CC_TEST_HARNESS_H
#define CC_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

extern int t_failed_now; /* set by a failing assertion inside the running test */

void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Runs one test function and prints "ok - name" or "not ok - name". With the
 * environment variable T_CASE set, only tests whose name contains it run. */
void t_run(const char *name, void (*fn)(void));
/* Prints the summary; returns the process exit status. */
int t_done(void);
/* A fresh temporary directory for this test binary (removed by t_done). */
const char *t_tmpdir(void);
/* Removes it now (programs that do not end with t_done: the benchmarks). */
void t_tmpdir_remove(void);
/* Path of a data file under test/data, or of an example binary under $CC_BIN. */
const char *t_data(const char *name);
const char *t_bin(const char *name);

#define T_ASSERT(c)                                                                                                    \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            t_fail(__FILE__, __LINE__, "assertion failed: %s", #c);                                                    \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)
#define T_EQ(a, b)                                                                                                     \
    do {                                                                                                               \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                                                        \
        if (t_a_ != t_b_) {                                                                                            \
            t_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, t_a_, #b, t_b_);                         \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)
#define T_STREQ(a, b)                                                                                                  \
    do {                                                                                                               \
        const char *t_a_ = (a), *t_b_ = (b);                                                                           \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) {                                                               \
            t_fail(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", #a, t_a_ ? t_a_ : "(null)",                    \
                   t_b_ ? t_b_ : "(null)");                                                                            \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)
#define T_CONTAINS(hay, needle)                                                                                        \
    do {                                                                                                               \
        const char *t_h_ = (hay), *t_n_ = (needle);                                                                    \
        if (!t_h_ || !strstr(t_h_, t_n_)) {                                                                            \
            t_fail(__FILE__, __LINE__, "%s is \"%s\", which lacks \"%s\"", #hay, t_h_ ? t_h_ : "(null)", t_n_);        \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

#endif
