// test.h: a minimal test harness. Each test program prints one line per check and ends with
// "N passed, N failed"; tests/run.sh adds the counts of every program.
#pragma once
#include <stdio.h>
#include <stdarg.h>

static int test_passed_, test_failed_;
static const char *test_group_ = "";

static inline void test_group(const char *name) { test_group_ = name; }
static inline int check_(int ok, const char *file, int line, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    if (ok) { test_passed_++; printf("ok   %s: ", test_group_); }
    else { test_failed_++; printf("FAIL %s (%s:%d): ", test_group_, file, line); }
    vprintf(fmt, ap); putchar('\n'); va_end(ap);
    return ok;
}
// CHECK(condition, "what was checked, with %s values", ...)
#define CHECK(cond, ...) check_((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)
static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}
