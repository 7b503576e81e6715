// dtest_ssd_scan.c: the Mamba-2 scan kernels of blocks/ssd_scan.c on their own, in double
// precision, against the recurrence of blocks.md §2.3 and its reverse (§7.5) written out plainly
// below (every state kept, no chunks, no padding). The kernels cut the state's N axis into blocks
// of vector lanes and its time axis into chunks of Q, so the cases cover N below, at and above one
// block (3, 16, 20, 33) and past the blocks held in registers (130), T not a multiple of Q, Q > T,
// several sequences and groups, and rows of the input wider than x|B|C (ld). Also: the results
// are the same bits for 1 and 3 threads, and the inference pieces (ssd_final_state,
// ssd_scan_step) continue the forward exactly.
#include "ssd_scan.h"
#include "test.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int B, T, H, P, N, G, Q; } Case;

static const Case cases[] = {
    {1, 11, 2, 4, 3, 1, 4},
    {2, 9, 4, 3, 16, 2, 4},
    {1, 13, 2, 5, 20, 1, 5},
    {2, 7, 2, 2, 33, 2, 3},
    {1, 6, 1, 3, 130, 1, 4},
    {1, 5, 2, 4, 8, 1, 64},
    {3, 10, 4, 8, 32, 4, 1},
};

static double urand(Rng *r) { return 2 * rng_uniform(r) - 1; }

// Plain reference. y (B,T,E); S_all (B,H,T,P,N) every state; then the reverse into the gradients.
static void reference(const Case *k, int ld, const double *x, const double *Bm, const double *Cm, const double *dlt,
                      const double *A, const double *D, const double *gy, double *y, double *S_last,
                      double *dx, double *dBh, double *dCh, double *ddlt, double *dA, double *dD) {
    int B = k->B, T = k->T, H = k->H, P = k->P, N = k->N, hpg = H / k->G, E = H * P;
    size_t PN = (size_t)P * N;
    double *S = calloc((size_t)T * PN, sizeof(double)), *dh = calloc(PN, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / hpg;
            for (int t = 0; t < T; t++) {
                size_t bt = (size_t)b * T + t;
                double dt = dlt[bt * H + h], al = exp(dt * A[h]);
                for (int p = 0; p < P; p++) {
                    double acc = D[h] * x[bt * ld + h * P + p];
                    for (int n = 0; n < N; n++) {
                        double prev = t ? S[(t - 1) * PN + p * N + n] : 0;
                        double s = al * prev + dt * x[bt * ld + h * P + p] * Bm[bt * ld + g * N + n];
                        S[t * PN + p * N + n] = s;
                        acc += s * Cm[bt * ld + g * N + n];
                    }
                    y[bt * E + h * P + p] = acc;
                }
            }
            memcpy(S_last + ((size_t)b * H + h) * PN, S + (T - 1) * PN, PN * sizeof(double));
            double sA = 0, sD = 0;
            memset(dh, 0, PN * sizeof(double));
            for (int t = T - 1; t >= 0; t--) {
                size_t bt = (size_t)b * T + t;
                double dt = dlt[bt * H + h], al = exp(dt * A[h]), sd = 0;
                const double *xt = x + bt * ld + h * P, *Bt = Bm + bt * ld + g * N, *Ct = Cm + bt * ld + g * N;
                const double *gt = gy + bt * E + h * P;
                for (int p = 0; p < P; p++)
                    for (int n = 0; n < N; n++) dh[p * N + n] += gt[p] * Ct[n];   // dL/dS_t
                for (int n = 0; n < N; n++) {
                    double sc = 0, sb = 0;
                    for (int p = 0; p < P; p++) { sc += gt[p] * S[t * PN + p * N + n]; sb += dh[p * N + n] * dt * xt[p]; }
                    dCh[(bt * H + h) * N + n] = sc;
                    dBh[(bt * H + h) * N + n] = sb;
                }
                for (int p = 0; p < P; p++) {
                    double s = 0;
                    for (int n = 0; n < N; n++) {
                        double prev = t ? S[(t - 1) * PN + p * N + n] : 0;
                        s += dh[p * N + n] * Bt[n];
                        sd += dh[p * N + n] * (xt[p] * Bt[n] + A[h] * al * prev);
                        sA += dh[p * N + n] * dt * al * prev;
                    }
                    dx[bt * ld + h * P + p] = D[h] * gt[p] + dt * s;
                    sD += gt[p] * xt[p];
                }
                ddlt[bt * H + h] = sd;
                for (size_t i = 0; i < PN; i++) dh[i] *= al;
            }
            dA[b * H + h] = sA;
            dD[b * H + h] = sD;
        }
    free(S); free(dh);
}

static double rel_err(const real *a, const double *r, size_t n, size_t stride, size_t width) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++)
        if (i % stride < width) scale = fmax(scale, fabs(r[i]));
    for (size_t i = 0; i < n; i++)
        if (i % stride < width) worst = fmax(worst, fabs(a[i] - r[i]));
    return worst / fmax(scale, 1e-300);
}

static void check_case(const Case *k) {
    int B = k->B, T = k->T, H = k->H, P = k->P, N = k->N, G = k->G, E = H * P, GN = G * N;
    int ld = E + 2 * GN + 3;   // rows wider than x|B|C, as in the block (which reads the conv output)
    size_t BT = (size_t)B * T, PN = (size_t)P * N;
    SsdDims d = {.B = B, .T = T, .H = H, .P = P, .N = N, .G = G, .Q = k->Q < T ? k->Q : T, .ld = ld};
    char label[96];
    snprintf(label, sizeof label, "B%d T%d H%d P%d N%d G%d Q%d", B, T, H, P, N, G, d.Q);
    Rng rng;
    rng_seed(&rng, 1000 + N);
    double *xr = malloc(BT * ld * sizeof(double)), *dltr = malloc(BT * H * sizeof(double)), *gyr = malloc(BT * E * sizeof(double));
    double Ar[8], Dr[8];
    for (size_t i = 0; i < BT * ld; i++) xr[i] = urand(&rng);
    for (size_t i = 0; i < BT * H; i++) dltr[i] = 0.2 + 0.6 * rng_uniform(&rng);
    for (size_t i = 0; i < BT * E; i++) gyr[i] = urand(&rng);
    for (int h = 0; h < H; h++) { Ar[h] = -(0.3 + 0.4 * h); Dr[h] = 0.5 + 0.1 * h; }
    double *y = calloc(BT * E, sizeof(double)), *Sl = calloc((size_t)B * H * PN, sizeof(double));
    double *dx = calloc(BT * ld, sizeof(double)), *dB = calloc(BT * H * N, sizeof(double)), *dC = calloc(BT * H * N, sizeof(double));
    double *dd = calloc(BT * H, sizeof(double)), *dA = calloc(B * H, sizeof(double)), *dD = calloc(B * H, sizeof(double));
    reference(k, ld, xr, xr + E, xr + E + GN, dltr, Ar, Dr, gyr, y, Sl, dx, dB, dC, dd, dA, dD);

    // the kernels, on `real` copies (double in this build), with 1 and 3 threads
    real *x = malloc(BT * ld * sizeof(real)), *dlt = malloc(BT * H * sizeof(real)), *gy = malloc(BT * E * sizeof(real));
    real A[8], D[8];
    for (size_t i = 0; i < BT * ld; i++) x[i] = (real)xr[i];
    for (size_t i = 0; i < BT * H; i++) dlt[i] = (real)dltr[i];
    for (size_t i = 0; i < BT * E; i++) gy[i] = (real)gyr[i];
    for (int h = 0; h < H; h++) { A[h] = (real)Ar[h]; D[h] = (real)Dr[h]; }
    size_t nck = (size_t)B * H * ssd_chunks(&d) * PN;
    real *out[2][7];
    size_t len[7] = {BT * E, nck, BT * ld, BT * H * N, BT * H * N, BT * H, (size_t)B * H * 2};
    for (int run = 0; run < 2; run++) {
        int nt = run ? 3 : 1;
        for (int i = 0; i < 7; i++) out[run][i] = calloc(len[i], sizeof(real));
        real *yk = out[run][0], *ck = out[run][1], *dxk = out[run][2], *dBk = out[run][3], *dCk = out[run][4];
        real *ddk = out[run][5], *dAk = out[run][6], *dDk = dAk + B * H;
        real *wf = malloc(nt * ssd_forward_work(&d) * sizeof(real)), *wb = malloc(nt * ssd_backward_work(&d) * sizeof(real));
        ssd_scan_forward(yk, ck, wf, x, x + E, x + E + GN, dlt, A, D, &d, nt);
        ssd_scan_backward(dxk, dBk, dCk, ddk, dAk, dDk, wb, gy, x, x + E, x + E + GN, dlt, ck, A, D, &d, nt);
        free(wf); free(wb);
    }
    real *yk = out[0][0], *dAk = out[0][6];
    // double: rounding only; the float build of this file (for a quick look) loosens to float's
    const double tol = sizeof(real) == 8 ? 1e-12 : 1e-5;
    double e;
    e = rel_err(yk, y, BT * E, 1, 1);
    CHECK(e < tol, "%s: y = reference (rel err %.1e)", label, e);
    e = rel_err(out[0][2], dx, BT * ld, ld, E);
    CHECK(e < tol, "%s: dx (rel err %.1e)", label, e);
    e = rel_err(out[0][3], dB, BT * H * N, 1, 1);
    CHECK(e < tol, "%s: dB per head (rel err %.1e)", label, e);
    e = rel_err(out[0][4], dC, BT * H * N, 1, 1);
    CHECK(e < tol, "%s: dC per head (rel err %.1e)", label, e);
    e = rel_err(out[0][5], dd, BT * H, 1, 1);
    CHECK(e < tol, "%s: dΔ (rel err %.1e)", label, e);
    double eA = rel_err(dAk, dA, B * H, 1, 1), eD = rel_err(dAk + B * H, dD, B * H, 1, 1);
    CHECK(eA < tol && eD < tol, "%s: dA, dD per sequence (rel err %.1e, %.1e)", label, eA, eD);
    int same = 1;
    for (int i = 0; i < 7; i++) same &= !memcmp(out[0][i], out[1][i], len[i] * sizeof(real));
    CHECK(same, "%s: 1 and 3 threads give the same bits", label);

    // inference: the state after T from the checkpoints, then one more step by ssd_scan_step
    real *S = malloc((size_t)H * PN * sizeof(real)), *yst = malloc(E * sizeof(real));
    double worst = 0, scale = 0;
    for (int b = 0; b < B; b++) {
        ssd_final_state(S, out[0][1], x, x + E, dlt, A, &d, b, 1);
        for (size_t i = 0; i < H * PN; i++) {
            worst = fmax(worst, fabs(S[i] - Sl[(size_t)b * H * PN + i]));
            scale = fmax(scale, fabs(Sl[(size_t)b * H * PN + i]));
        }
    }
    CHECK(worst < tol * scale, "%s: ssd_final_state = the reference's last state (max diff %.1e of %.2f)", label, worst, scale);
    // the last row again, stepped from the state after T-1: must give the forward's last y row
    SsdDims d1 = d;
    d1.T = T - 1;
    if (T > 1) {
        // the forward over T-1 positions leaves its own checkpoints
        real *ck1 = calloc((size_t)B * H * ssd_chunks(&d1) * PN, sizeof(real)), *y1 = calloc(BT * E, sizeof(real));
        real *wf = malloc(ssd_forward_work(&d1) * sizeof(real));
        // rows of the T-1 problem: sequence b's rows are the first T-1 of the T problem's
        real *x1 = malloc((size_t)B * (T - 1) * ld * sizeof(real)), *dl1 = malloc((size_t)B * (T - 1) * H * sizeof(real));
        for (int b = 0; b < B; b++) {
            memcpy(x1 + (size_t)b * (T - 1) * ld, x + (size_t)b * T * ld, (size_t)(T - 1) * ld * sizeof(real));
            memcpy(dl1 + (size_t)b * (T - 1) * H, dlt + (size_t)b * T * H, (size_t)(T - 1) * H * sizeof(real));
        }
        ssd_scan_forward(y1, ck1, wf, x1, x1 + E, x1 + E + GN, dl1, A, D, &d1, 1);
        double w2 = 0;
        for (int b = 0; b < B; b++) {
            ssd_final_state(S, ck1, x1, x1 + E, dl1, A, &d1, b, 1);
            size_t bt = (size_t)b * T + T - 1;
            ssd_scan_step(yst, S, x + bt * ld, x + bt * ld + E, x + bt * ld + E + GN, dlt + bt * H, A, D, &d, 1);
            for (int i = 0; i < E; i++) w2 = fmax(w2, fabs(yst[i] - y[bt * E + i]));
            for (size_t i = 0; i < H * PN; i++) w2 = fmax(w2, fabs(S[i] - Sl[(size_t)b * H * PN + i]));
        }
        CHECK(w2 < tol * fmax(scale, 1), "%s: forward T-1, ssd_final_state, ssd_scan_step = the reference's last row and state (%.1e)", label, w2);
        free(ck1); free(y1); free(wf); free(x1); free(dl1);
    }
    free(S); free(yst);
    for (int run = 0; run < 2; run++) for (int i = 0; i < 7; i++) free(out[run][i]);
    free(xr); free(dltr); free(gyr); free(x); free(dlt); free(gy);
    free(y); free(Sl); free(dx); free(dB); free(dC); free(dd); free(dA); free(dD);
}

int main(void) {
    test_group("ssd_scan");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
    return test_summary();
}
