// ssd_scan.c: the Mamba-2 scan kernels (see ssd_scan.h): the sequential recurrence used for
// training, its exact reverse (blocks.md §7.5), and the chunked SSD form (§2.4).
//
// Threads: one OpenMP item per (b, h), static schedule. Every output element belongs to exactly
// one item (the caller reduces the per-head dB/dC and per-sequence dA/dD partials in a fixed
// order), so the results are the same for any thread count.
#include "ssd_scan.h"
#include <omp.h>
#include <string.h>

// The N-wide dot products and sums below may be summed in any fixed order, and a*b+c may fuse into
// one FMA (as in mamba1.c's scan): without this, GCC keeps the source's strict left-to-right
// order and reduces each omp simd sum lane by lane, one dependent scalar add after another, for
// every (t, p). The order is still fixed by the build, so results stay bitwise reproducible and
// independent of the thread count.
#pragma GCC push_options
#pragma GCC optimize("associative-math", "no-signed-zeros", "no-trapping-math", "fp-contract=fast")

size_t ssd_forward_work(const SsdDims *d) { return (size_t)d->P * d->N; }
size_t ssd_backward_work(const SsdDims *d) { return (size_t)(d->Q + 1) * d->P * d->N; }
size_t ssd_chunked_work(const SsdDims *d) { return (size_t)d->Q * d->Q + d->Q + (size_t)d->P * d->N; }

// ----------------------------------------------------------------------------
// sequential recurrence

void ssd_scan_forward(real *y, real *ckpt, real *work, const real *x, const real *Bm, const real *Cm,
                      const real *dlt, const real *A, const real *D, const SsdDims *d, int nt) {
    const int B = d->B, T = d->T, H = d->H, P = d->P, N = d->N, Q = d->Q, ld = d->ld;
    const int hpg = H / d->G, nc = ssd_chunks(d), E = H * P;
    const size_t PN = (size_t)P * N;
    #pragma omp parallel num_threads(nt)
    {
        real *S = work + (size_t)omp_get_thread_num() * PN;   // running state (P,N)
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const int g = h / hpg;
                const real a = A[h], Dh = D[h];
                real *ck = ckpt + ((size_t)b * H + h) * nc * PN;
                memset(S, 0, PN * sizeof(real));
                for (int t = 0; t < T; t++) {
                    if (t % Q == 0) memcpy(ck + (size_t)(t / Q) * PN, S, PN * sizeof(real));
                    size_t bt = (size_t)b * T + t;
                    const real dt = dlt[bt * H + h], al = exp(dt * a);   // α_t = exp(Δ_t A_h) in (0,1]
                    const real *xt = x + bt * ld + (size_t)h * P;
                    const real *Bt = Bm + bt * ld + (size_t)g * N, *Ct = Cm + bt * ld + (size_t)g * N;
                    real *yt = y + bt * E + (size_t)h * P;
                    for (int p = 0; p < P; p++) {
                        real *Sp = S + (size_t)p * N, dxp = dt * xt[p], acc = 0;
                        #pragma omp simd reduction(+:acc)
                        for (int n = 0; n < N; n++) { Sp[n] = al * Sp[n] + dxp * Bt[n]; acc += Sp[n] * Ct[n]; }
                        yt[p] = acc + Dh * xt[p];
                    }
                }
            }
    }
}

// Per (b, h), chunks last to first: recompute the chunk's states S_t (t0 <= t < t1) from its
// checkpoint with the forward's arithmetic, then walk t backwards carrying dh = dL/dS. On entry
// to step t, dh holds α_{t+1} dh_{t+1} (0 at t = T-1); the step adds its output path gy_t C_t.
void ssd_scan_backward(real *dx, real *dBh, real *dCh, real *ddlt, real *dA_bh, real *dD_bh,
                       real *work, const real *gy, const real *x, const real *Bm, const real *Cm,
                       const real *dlt, const real *ckpt, const real *A, const real *D,
                       const SsdDims *d, int nt) {
    const int B = d->B, T = d->T, H = d->H, P = d->P, N = d->N, Q = d->Q, ld = d->ld;
    const int hpg = H / d->G, nc = ssd_chunks(d), E = H * P;
    const size_t PN = (size_t)P * N;
    #pragma omp parallel num_threads(nt)
    {
        real *hs = work + (size_t)omp_get_thread_num() * ssd_backward_work(d);   // (Q,P,N) states
        real *dh = hs + (size_t)Q * PN;                                          // (P,N)
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const int g = h / hpg;
                const real a = A[h], Dh = D[h];
                const real *ck = ckpt + ((size_t)b * H + h) * nc * PN;
                // per-head scalars reduce over T·P: accumulate in double (§9.8)
                double dA = 0, dD = 0;
                memset(dh, 0, PN * sizeof(real));
                for (int c = nc - 1; c >= 0; c--) {
                    const int t0 = c * Q, t1 = t0 + Q < T ? t0 + Q : T;
                    const real *S0 = ck + (size_t)c * PN;   // S_{t0-1}
                    for (int t = t0; t < t1; t++) {
                        size_t bt = (size_t)b * T + t;
                        const real dt = dlt[bt * H + h], al = exp(dt * a);
                        const real *xt = x + bt * ld + (size_t)h * P, *Bt = Bm + bt * ld + (size_t)g * N;
                        const real *Sp = t == t0 ? S0 : hs + (size_t)(t - t0 - 1) * PN;
                        real *St = hs + (size_t)(t - t0) * PN;
                        for (int p = 0; p < P; p++) {
                            real dxp = dt * xt[p];
                            #pragma omp simd
                            for (int n = 0; n < N; n++) St[p * N + n] = al * Sp[p * N + n] + dxp * Bt[n];
                        }
                    }
                    for (int t = t1 - 1; t >= t0; t--) {
                        size_t bt = (size_t)b * T + t;
                        const real dt = dlt[bt * H + h], al = exp(dt * a);
                        const real *xt = x + bt * ld + (size_t)h * P;
                        const real *Bt = Bm + bt * ld + (size_t)g * N, *Ct = Cm + bt * ld + (size_t)g * N;
                        const real *gt = gy + bt * E + (size_t)h * P;
                        const real *St = hs + (size_t)(t - t0) * PN;
                        const real *Sp = t == t0 ? S0 : St - PN;
                        real *dBt = dBh + (bt * H + h) * N, *dCt = dCh + (bt * H + h) * N;
                        real *dxt = dx + bt * ld + (size_t)h * P;
                        for (int n = 0; n < N; n++) { dBt[n] = 0; dCt[n] = 0; }
                        real sH = 0, sBx = 0;   // Σ_{p,n} dh_t S_{t-1};  Σ_p x_p Σ_n dh_t B
                        for (int p = 0; p < P; p++) {
                            const real gp = gt[p], xp = xt[p], dxp = dt * xp;
                            real *dhp = dh + (size_t)p * N, sB = 0;
                            const real *Stp = St + (size_t)p * N, *Spp = Sp + (size_t)p * N;
                            #pragma omp simd reduction(+:sB, sH)
                            for (int n = 0; n < N; n++) {
                                real dhn = dhp[n] + gp * Ct[n];   // dh_t
                                dCt[n] += gp * Stp[n];
                                dBt[n] += dhn * dxp;
                                sB += dhn * Bt[n];
                                sH += dhn * Spp[n];
                                dhp[n] = al * dhn;                // carried to step t-1
                            }
                            dxt[p] = Dh * gp + dt * sB;
                            sBx += xp * sB;
                            dD += gp * xp;
                        }
                        // dΔ = Σ dh (B x + A α S_{t-1});  dA = Σ_t Δ α Σ dh S_{t-1}
                        ddlt[bt * H + h] = sBx + a * al * sH;
                        dA += dt * al * sH;
                    }
                }
                dA_bh[(size_t)b * H + h] = (real)dA;
                dD_bh[(size_t)b * H + h] = (real)dD;
            }
    }
}

// ----------------------------------------------------------------------------
// chunked SSD form (§2.4). Per (b, h) and chunk of Qc <= Q steps with a_l = Δ_l A_h (<= 0):
//   acum[l]   = Σ_{k<=l} a_k
//   seg[l][s] = Σ_{k=s+1..l} a_k  (s <= l), summed directly: the stable segsum, never a
//               difference of cumulative sums (which loses precision, §2.4, §9.5)
//   y_l  = exp(acum[l]) S_in C_l  +  Σ_{s<=l} (C_l·B_s) exp(seg[l][s]) Δ_s x_s  +  D x_l
//   S_out = exp(acum[Qc-1]) S_in  +  Σ_s exp(seg[Qc-1][s]) Δ_s x_s ⊗ B_s
// This is the form a faster (matrix-product) forward will use; here it is written plainly.

void ssd_chunked_forward(real *y, real *states, real *work, const real *x, const real *Bm,
                         const real *Cm, const real *dlt, const real *A, const real *D,
                         const SsdDims *d, int nt) {
    const int B = d->B, T = d->T, H = d->H, P = d->P, N = d->N, Q = d->Q, ld = d->ld;
    const int hpg = H / d->G, nc = ssd_chunks(d), E = H * P;
    const size_t PN = (size_t)P * N;
    #pragma omp parallel num_threads(nt)
    {
        real *seg = work + (size_t)omp_get_thread_num() * ssd_chunked_work(d);   // (Q,Q)
        real *acum = seg + (size_t)Q * Q;                                         // (Q)
        real *S = acum + Q;                                                       // (P,N)
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const int g = h / hpg;
                const real a = A[h], Dh = D[h];
                memset(S, 0, PN * sizeof(real));
                for (int c = 0; c < nc; c++) {
                    const int t0 = c * Q, Qc = t0 + Q < T ? Q : T - t0;
                    const size_t bt0 = (size_t)b * T + t0;
                    if (states) memcpy(states + (((size_t)b * H + h) * nc + c) * PN, S, PN * sizeof(real));
                    real run = 0;
                    for (int l = 0; l < Qc; l++) { run += dlt[(bt0 + l) * H + h] * a; acum[l] = run; }
                    for (int s = 0; s < Qc; s++) {
                        real sum = 0;
                        seg[(size_t)s * Q + s] = 0;
                        for (int l = s + 1; l < Qc; l++) { sum += dlt[(bt0 + l) * H + h] * a; seg[(size_t)l * Q + s] = sum; }
                    }
                    for (int l = 0; l < Qc; l++) {
                        const real *xl = x + (bt0 + l) * ld + (size_t)h * P, *Cl = Cm + (bt0 + l) * ld + (size_t)g * N;
                        real *yl = y + (bt0 + l) * E + (size_t)h * P, el = exp(acum[l]);
                        for (int p = 0; p < P; p++) {   // state entering the chunk, and D
                            real acc = 0;
                            for (int n = 0; n < N; n++) acc += S[p * N + n] * Cl[n];
                            yl[p] = el * acc + Dh * xl[p];
                        }
                        for (int s = 0; s <= l; s++) {  // inside the chunk
                            const real *xs = x + (bt0 + s) * ld + (size_t)h * P, *Bs = Bm + (bt0 + s) * ld + (size_t)g * N;
                            real cb = 0;
                            for (int n = 0; n < N; n++) cb += Cl[n] * Bs[n];
                            real w = cb * exp(seg[(size_t)l * Q + s]) * dlt[(bt0 + s) * H + h];
                            for (int p = 0; p < P; p++) yl[p] += w * xs[p];
                        }
                    }
                    real decay = exp(acum[Qc - 1]);
                    for (size_t i = 0; i < PN; i++) S[i] *= decay;
                    for (int s = 0; s < Qc; s++) {
                        const real *xs = x + (bt0 + s) * ld + (size_t)h * P, *Bs = Bm + (bt0 + s) * ld + (size_t)g * N;
                        real w = exp(seg[(size_t)(Qc - 1) * Q + s]) * dlt[(bt0 + s) * H + h];
                        for (int p = 0; p < P; p++) {
                            real wx = w * xs[p];
                            for (int n = 0; n < N; n++) S[p * N + n] += wx * Bs[n];
                        }
                    }
                }
            }
    }
}

// ----------------------------------------------------------------------------
// inference: one position at a time, and the state a forward ends in

// S_t = α S_{t-1} + Δ x ⊗ B for one head, S: (P,N); α = exp(Δ A_h) computed as the forward does
static inline void state_update(real *S, real al, real dt, const real *xt, const real *Bt, int P, int N) {
    for (int p = 0; p < P; p++) {
        real *Sp = S + (size_t)p * N, dxp = dt * xt[p];
        #pragma omp simd
        for (int n = 0; n < N; n++) Sp[n] = al * Sp[n] + dxp * Bt[n];
    }
}

void ssd_scan_step(real *y, real *S, const real *x, const real *Bm, const real *Cm, const real *dlt,
                   const real *A, const real *D, const SsdDims *d, int nt) {
    const int H = d->H, P = d->P, N = d->N, hpg = H / d->G;
    const size_t PN = (size_t)P * N;
    // heads are independent, so any thread count gives the same bits; a small state is not
    // worth waking the threads for
    #pragma omp parallel for schedule(static) num_threads(nt) if (H * PN >= 32768)
    for (int h = 0; h < H; h++) {
        const int g = h / hpg;
        const real dt = dlt[h], al = exp(dt * A[h]), Dh = D[h];
        const real *xt = x + (size_t)h * P, *Bt = Bm + (size_t)g * N, *Ct = Cm + (size_t)g * N;
        real *Sh = S + (size_t)h * PN;
        for (int p = 0; p < P; p++) {
            real *Sp = Sh + (size_t)p * N, dxp = dt * xt[p], acc = 0;
            #pragma omp simd reduction(+:acc)
            for (int n = 0; n < N; n++) { Sp[n] = al * Sp[n] + dxp * Bt[n]; acc += Sp[n] * Ct[n]; }
            y[(size_t)h * P + p] = acc + Dh * xt[p];
        }
    }
}

void ssd_final_state(real *S, const real *ckpt, const real *x, const real *Bm, const real *dlt,
                     const real *A, const SsdDims *d, int b, int nt) {
    const int T = d->T, H = d->H, P = d->P, N = d->N, Q = d->Q, ld = d->ld;
    const int hpg = H / d->G, nc = ssd_chunks(d), c = nc - 1;
    const size_t PN = (size_t)P * N;
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (int h = 0; h < H; h++) {
        const int g = h / hpg;
        real *Sh = S + (size_t)h * PN;
        // S_{cQ-1}: the state entering the last chunk (zeros for chunk 0)
        memcpy(Sh, ckpt + (((size_t)b * H + h) * nc + c) * PN, PN * sizeof(real));
        for (int t = c * Q; t < T; t++) {
            size_t bt = (size_t)b * T + t;
            const real dt = dlt[bt * H + h];
            state_update(Sh, exp(dt * A[h]), dt, x + bt * ld + (size_t)h * P, Bm + bt * ld + (size_t)g * N, P, N);
        }
    }
}

#pragma GCC pop_options
