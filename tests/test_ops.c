// test_ops.c: the vectorizable exp against libm, and its use in a vector loop.
#include "ops.h"
#include "test.h"
#include <math.h>

static void test_exp_vec(void) {
    test_group("exp_vec");
    // every 1/1024 over the range the scans use (Δ·A is <= 0; sigmoid and softplus use both signs)
    double worst = 0, worst_x = 0;
    for (int i = -87 * 1024; i <= 88 * 1024 - 1; i++) {
        float x = i / 1024.0f;
        double want = exp((double)x), got = exp_vec(x), rel = fabs(got - want) / want;
        if (rel > worst) { worst = rel; worst_x = x; }
    }
    CHECK(worst < 2e-7, "relative error <= 2e-7 over [-87, 88] (worst %.3g at x = %g)", worst, worst_x);
    CHECK(exp_vec(0.0f) == 1.0f, "exp_vec(0) = 1 exactly (got %.9g)", exp_vec(0.0f));
    float tiny = exp_vec(-1000.0f);
    CHECK(tiny >= 0 && tiny < 1.3e-38f, "exp_vec(-1000) is 0 to float precision (got %g)", tiny);
    CHECK(isfinite(exp_vec(100.0f)) && exp_vec(100.0f) > 1e38f, "exp_vec(100) saturates finite (got %g)", exp_vec(100.0f));
    // the same numbers from a vectorized loop as from scalar calls (so thread and lane layout
    // cannot change results)
    enum { n = 1000 };
    float xs[n], v[n];
    for (int i = 0; i < n; i++) xs[i] = -50.0f + 0.1f * i;
    #pragma omp simd
    for (int i = 0; i < n; i++) v[i] = exp_vec(xs[i]);
    int same = 1;
    for (int i = 0; i < n; i++) same &= v[i] == exp_vec(xs[i]);
    CHECK(same, "vector loop and scalar calls agree bitwise");
}

int main(void) {
    test_exp_vec();
    return test_summary();
}
