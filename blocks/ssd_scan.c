// ssd_scan.c: the Mamba-2 scan kernels (see ssd_scan.h): the sequential recurrence used for
// training, its exact reverse (blocks.md §7.5), and the chunked SSD form (§2.4).
//
// Threads: OpenMP items are (sequence, block of heads), static schedule (head_blocks). Every
// output element belongs to exactly one head of one item, and a head's arithmetic does not depend
// on the block it is in (the caller reduces the per-head dB/dC and per-sequence dA/dD partials in
// a fixed order), so the results are the same bits for any thread count.
//
// Speed (float, 1 thread, B·T = 4096, H 8, P = N = 32, Q 64): forward 7 -> 3.5 ms, backward
// 27 -> 9 ms against the plain (b, h, t, p, n) loops this replaced: the state rows in registers
// across time steps, chunk-major order for the cache, and reassociation (below).
#include "ssd_scan.h"
#include <omp.h>
#include <string.h>

// The lane sums below may be summed in any fixed order, and a*b+c may fuse into
// one FMA (as in mamba1.c's scan): without this, GCC keeps the source's strict left-to-right
// order and reduces each omp simd sum lane by lane, one dependent scalar add after another, for
// every (t, p). The order is still fixed by the build, so results stay bitwise reproducible and
// independent of the thread count.
#pragma GCC push_options
#pragma GCC optimize("associative-math", "no-signed-zeros", "no-trapping-math", "fp-contract=fast")

// ----------------------------------------------------------------------------
// Lane blocks. A row S[p,:] of the state (N reals) is cut into blocks of W lanes, zero padded to
// Np = NB·W, and held in GCC vector types: a segment of up to NB_REG blocks of one row stays in
// registers while the loop walks the time steps of a chunk (rows p are independent in the
// recurrence, so p is the outer loop and t the inner one). Padded lanes see B = C = 0, so their S
// and dh stay exactly 0 and add nothing to any sum. Per (t, p) one sum runs across the lanes
// (y_t[p] in the forward, Σ_n dh B in the backward), in a fixed order (hsum).

enum { W = 16, NB_REG = 8 };
typedef real vreal __attribute__((vector_size(W * sizeof(real))));
typedef real vhalf __attribute__((vector_size(W / 2 * sizeof(real))));
typedef real vquart __attribute__((vector_size(W / 4 * sizeof(real))));

static inline vreal vload(const real *p) { vreal v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(real *p, vreal v) { memcpy(p, &v, sizeof v); }
#if defined(__has_builtin) && __has_builtin(__builtin_shufflevector)
static inline real hsum(vreal v) {   // halves added in registers
    vhalf a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    vquart c = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (c[0] + c[2]) + (c[1] + c[3]);
}
#else
static inline real hsum(vreal v) {   // the same order, through memory
    vhalf a, b;
    memcpy(&a, &v, sizeof a); memcpy(&b, (char *)&v + sizeof a, sizeof b);
    a += b;
    vquart c, e;
    memcpy(&c, &a, sizeof c); memcpy(&e, (char *)&a + sizeof c, sizeof e);
    c += e;
    return (c[0] + c[2]) + (c[1] + c[3]);
}
#endif
// Short row copies (N reals) as plain loops: a libc call per row costs more than the copy.
static inline void copy_row(real *dst, const real *src, int n) { for (int i = 0; i < n; i++) dst[i] = src[i]; }

static inline int padded(int N) { return (N + W - 1) / W * W; }

// Forward work per thread: S (H,P,Np) the running states of up to H heads; Bc, Cc (Q,Np) a
// chunk's B and C rows, padded; al, dt (Q) its α and Δ; dxT (P,Q) its Δ x, transposed so that a
// row p walks along t.
size_t ssd_forward_work(const SsdDims *d) {
    size_t Np = padded(d->N), P = d->P, Q = d->Q, H = d->H;
    return Np * (H * P + 2 * Q) + 2 * Q + P * Q;
}
// Backward work per thread: Bc, Cc (Q,Np); hs (2,Q+1,Np) a row pair's states along a chunk, the
// entry state first; dh (H,P,Np) dL/dS of up to H heads carried between chunks; dB, dC, vH (Q,Np) sums over
// p; sB (Q,P); al, dt (Q); dxT, gT (P,Q) Δ x and gy transposed.
size_t ssd_backward_work(const SsdDims *d) {
    size_t Np = padded(d->N), P = d->P, Q = d->Q, H = d->H;
    return Np * (2 * Q + 2 * (Q + 1) + H * P + 3 * Q) + 3 * Q * P + 2 * Q;
}

// Work items: (sequence b, block of heads). An item walks the chunks in order (or in reverse)
// and, within a chunk, its heads, so that the chunk's rows of x, B, C, gy and dx are read from
// cache by every head instead of once per head from memory. Heads are independent, so how they
// are grouped changes no result: the blocks only give every thread the same number of items.
static int head_blocks(int B, int H, int nt) {
    int a = B, b = nt;   // nt / gcd(B, nt) blocks per sequence: B·blocks is a multiple of nt
    while (b) { int r = a % b; a = b; b = r; }
    int k = nt / a;
    return k < 1 ? 1 : k > H ? H : k;
}
size_t ssd_chunked_work(const SsdDims *d) { return (size_t)d->Q * d->Q + d->Q + (size_t)d->P * d->N; }

// A chunk's B and C rows of group g into padded (Qc,Np) rows; its Δ and α = exp(Δ A_h); Δ x of
// head h transposed into dxT (P,Q), and gy likewise into gT (if not NULL). xh, gh: the chunk's
// first rows of head h (strides ld and E).
static void load_chunk(real *Bc, real *Cc, real *al, real *dt, real *dxT, real *gT, const real *Bm,
                       const real *Cm, const real *dlt, const real *xh, const real *gh, size_t bt0, int Qc,
                       const SsdDims *d, int h, int Np, real a) {
    const int H = d->H, N = d->N, P = d->P, Q = d->Q, ld = d->ld, E = H * P;
    const size_t g = (size_t)(h / (H / d->G));
    for (int l = 0; l < Qc; l++) {
        size_t bt = bt0 + l;
        real *Bl = Bc + (size_t)l * Np, *Cl = Cc + (size_t)l * Np;
        copy_row(Bl, Bm + bt * ld + g * N, N);
        copy_row(Cl, Cm + bt * ld + g * N, N);
        for (int n = N; n < Np; n++) Bl[n] = Cl[n] = 0;
        dt[l] = dlt[bt * H + h];
        al[l] = exp(dt[l] * a);   // α_t = exp(Δ_t A_h) in (0,1]
        for (int p = 0; p < P; p++) dxT[(size_t)p * Q + l] = dt[l] * xh[(size_t)l * ld + p];
        if (gT) for (int p = 0; p < P; p++) gT[(size_t)p * Q + l] = gh[(size_t)l * E + p];
    }
}

// The kernels below work on lanes [j0·W, (j0+nb)·W) of R rows p0.. at once (R = 2, or 1 for an
// odd last row): the rows share the loads of B, C and of the sums over p, and give the core two
// independent chains. nb and R are constants after inlining (FOR_SEGMENTS, ROW_PAIRS).
#define FOR_SEGMENTS(Np, KERNEL, ...)                                                        \
    for (int j0 = 0; j0 < (Np) / W; j0 += NB_REG) {                                          \
        int nb_ = (Np) / W - j0 < NB_REG ? (Np) / W - j0 : NB_REG;                           \
        switch (nb_) {                                                                       \
        case 1: KERNEL(__VA_ARGS__, j0, 1); break;                                           \
        case 2: KERNEL(__VA_ARGS__, j0, 2); break;                                           \
        case 3: KERNEL(__VA_ARGS__, j0, 3); break;                                           \
        case 4: KERNEL(__VA_ARGS__, j0, 4); break;                                           \
        case 5: KERNEL(__VA_ARGS__, j0, 5); break;                                           \
        case 6: KERNEL(__VA_ARGS__, j0, 6); break;                                           \
        case 7: KERNEL(__VA_ARGS__, j0, 7); break;                                           \
        default: KERNEL(__VA_ARGS__, j0, NB_REG); break;                                     \
        }                                                                                    \
    }
#define ROW_PAIRS(P, ROWS, ...)                                                              \
    do {                                                                                     \
        int p0_ = 0;                                                                         \
        for (; p0_ + 2 <= (P); p0_ += 2) ROWS(__VA_ARGS__, p0_, 2, j0, nb);                  \
        if (p0_ < (P)) ROWS(__VA_ARGS__, p0_, 1, j0, nb);                                    \
    } while (0)

#define INLINE static inline __attribute__((always_inline))

// ----------------------------------------------------------------------------
// sequential recurrence

// One chunk of Qc steps: S_t = α S_{t-1} + Δ x_t[p] B_t, and the lanes' part of S_t C_t set
// (j0 = 0) or added into y_t[p] (rows of stride ys).
INLINE void fwd_rows(real *S, real *y, int ys, const real *Bc, const real *Cc, const real *al, const real *dxT,
                     int Qc, int Q, int Np, int p0, const int R, int j0, const int nb) {
    vreal s[2][NB_REG];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < nb; j++) s[r][j] = vload(S + (size_t)(p0 + r) * Np + (size_t)(j0 + j) * W);
    for (int l = 0; l < Qc; l++) {
        const real a = al[l];
        const size_t o = (size_t)l * Np + (size_t)j0 * W;
        real dxp[2];
        vreal acc[2];
        for (int r = 0; r < R; r++) { dxp[r] = dxT[(size_t)(p0 + r) * Q + l]; acc[r] = (vreal){0}; }
        for (int j = 0; j < nb; j++) {
            const vreal Bv = vload(Bc + o + j * W), Cv = vload(Cc + o + j * W);
            for (int r = 0; r < R; r++) {
                s[r][j] = a * s[r][j] + dxp[r] * Bv;
                acc[r] += s[r][j] * Cv;
            }
        }
        for (int r = 0; r < R; r++) {
            real v = hsum(acc[r]), *yp = y + (size_t)l * ys + p0 + r;
            *yp = j0 ? *yp + v : v;
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < nb; j++) vstore(S + (size_t)(p0 + r) * Np + (size_t)(j0 + j) * W, s[r][j]);
}
INLINE void fwd_segment(real *S, real *y, int ys, const real *Bc, const real *Cc, const real *al, const real *dxT,
                        int Qc, int Q, int P, int Np, int j0, const int nb) {
    ROW_PAIRS(P, fwd_rows, S, y, ys, Bc, Cc, al, dxT, Qc, Q, Np);
}

void ssd_scan_forward(real *y, real *ckpt, real *work, const real *x, const real *Bm, const real *Cm,
                      const real *dlt, const real *A, const real *D, const SsdDims *d, int nt) {
    const int B = d->B, T = d->T, H = d->H, P = d->P, N = d->N, Q = d->Q, ld = d->ld;
    const int nc = ssd_chunks(d), E = H * P, Np = padded(N), nhb = head_blocks(B, H, nt);
    const size_t PN = (size_t)P * N;
    #pragma omp parallel num_threads(nt)
    {
        real *Sall = work + (size_t)omp_get_thread_num() * ssd_forward_work(d);   // (H,P,Np)
        real *Bc = Sall + (size_t)H * P * Np, *Cc = Bc + (size_t)Q * Np;          // (Q,Np) each
        real *al = Cc + (size_t)Q * Np, *dt = al + Q, *dxT = dt + Q;               // (Q), (Q), (P,Q)
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int hb = 0; hb < nhb; hb++) {
                const int h0 = hb * H / nhb, h1 = (hb + 1) * H / nhb;
                memset(Sall, 0, (size_t)(h1 - h0) * P * Np * sizeof(real));
                for (int c = 0; c < nc; c++) {
                    const int t0 = c * Q, Qc = t0 + Q < T ? Q : T - t0;
                    const size_t bt0 = (size_t)b * T + t0;
                    for (int h = h0; h < h1; h++) {
                        real *S = Sall + (size_t)(h - h0) * P * Np, *ck = ckpt + (((size_t)b * H + h) * nc + c) * PN;
                        for (int p = 0; p < P; p++)   // the state entering the chunk
                            copy_row(ck + (size_t)p * N, S + (size_t)p * Np, N);
                        real *yh = y + bt0 * E + (size_t)h * P;
                        const real *xh = x + bt0 * ld + (size_t)h * P;
                        load_chunk(Bc, Cc, al, dt, dxT, NULL, Bm, Cm, dlt, xh, NULL, bt0, Qc, d, h, Np, A[h]);
                        FOR_SEGMENTS(Np, fwd_segment, S, yh, E, Bc, Cc, al, dxT, Qc, Q, P, Np)
                        for (int l = 0; l < Qc; l++)
                            for (int p = 0; p < P; p++) yh[(size_t)l * E + p] += D[h] * xh[(size_t)l * ld + p];
                    }
                }
            }
    }
}

// The chunk's states of rows p0.. again, from their entry states hs[r][0] (r = p - p0):
// hs[r][l+1] = S_{t0+l}[p], with the forward's arithmetic.
INLINE void rec_rows(real *hs, const real *Bc, const real *al, const real *dxT, int Qc, int Q, int Np,
                     int p0, const int R, int j0, const int nb) {
    vreal s[2][NB_REG];
    real *hp[2];
    for (int r = 0; r < R; r++) {
        hp[r] = hs + (size_t)r * (Q + 1) * Np + (size_t)j0 * W;
        for (int j = 0; j < nb; j++) s[r][j] = vload(hp[r] + j * W);
    }
    for (int l = 0; l < Qc; l++) {
        const real a = al[l];
        const real *Bl = Bc + (size_t)l * Np + (size_t)j0 * W;
        for (int j = 0; j < nb; j++) {
            const vreal Bv = vload(Bl + j * W);
            for (int r = 0; r < R; r++) {
                s[r][j] = a * s[r][j] + dxT[(size_t)(p0 + r) * Q + l] * Bv;
                vstore(hp[r] + (size_t)(l + 1) * Np + j * W, s[r][j]);
            }
        }
    }
}

// The chunk's steps backwards. dh (P,Np): on entry α_{t1} dh_{t1} (what flows back into the
// chunk's last state), on exit the same for its first. Step t (l = t - t0), row p:
//   dh_t = (carried) + gy_t[p] C_t;  dC_t += gy_t[p] S_t;  dB_t += Δ x_t[p] dh_t;
//   vH_t += dh_t ⊙ S_{t-1};  sB_t[p] = Σ_n dh_t B_t (set for j0 = 0, else added);  carry α_t dh_t.
// The sums over p run in row order whatever R is, so R does not change the bits.
INLINE void bwd_rows(real *dh, real *dB, real *dC, real *vH, real *sB, const real *hs, const real *Bc,
                     const real *Cc, const real *al, const real *dxT, const real *gT, int Qc, int Q, int P,
                     int Np, int p0, const int R, int j0, const int nb) {
    vreal dv[2][NB_REG];
    const real *hp[2];
    for (int r = 0; r < R; r++) {
        hp[r] = hs + (size_t)r * (Q + 1) * Np + (size_t)j0 * W;
        for (int j = 0; j < nb; j++) dv[r][j] = vload(dh + (size_t)(p0 + r) * Np + (size_t)(j0 + j) * W);
    }
    for (int l = Qc - 1; l >= 0; l--) {
        const real a = al[l];
        const size_t o = (size_t)l * Np + (size_t)j0 * W;
        real gp[2], dxp[2];
        vreal pr[2];
        for (int r = 0; r < R; r++) {
            gp[r] = gT[(size_t)(p0 + r) * Q + l];
            dxp[r] = dxT[(size_t)(p0 + r) * Q + l];
            pr[r] = (vreal){0};
        }
        for (int j = 0; j < nb; j++) {
            const int k = j * W;
            const vreal Cv = vload(Cc + o + k), Bv = vload(Bc + o + k);
            vreal aC = vload(dC + o + k), aB = vload(dB + o + k), aH = vload(vH + o + k);
            for (int r = 0; r < R; r++) {
                const real *St = hp[r] + (size_t)(l + 1) * Np, *Sp = hp[r] + (size_t)l * Np;
                vreal dn = dv[r][j] + gp[r] * Cv;   // dh_t
                aC += gp[r] * vload(St + k);
                aB += dxp[r] * dn;
                pr[r] += dn * Bv;
                aH += dn * vload(Sp + k);
                dv[r][j] = a * dn;                   // carried to step t-1
            }
            vstore(dC + o + k, aC); vstore(dB + o + k, aB); vstore(vH + o + k, aH);
        }
        for (int r = 0; r < R; r++) {
            real v = hsum(pr[r]), *sp = sB + (size_t)l * P + p0 + r;
            *sp = j0 ? *sp + v : v;
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < nb; j++) vstore(dh + (size_t)(p0 + r) * Np + (size_t)(j0 + j) * W, dv[r][j]);
}
// Rows p0.. of the chunk: their entry states from the checkpoint ck (P,N), their states along the
// chunk (rec_rows), then the steps backwards (bwd_rows). A row's states are used right after they
// are made, so hs holds R rows only and stays in cache whatever Q and N are.
INLINE void bwd_pair(real *dh, real *dB, real *dC, real *vH, real *sB, real *hs, const real *ck, const real *Bc,
                     const real *Cc, const real *al, const real *dxT, const real *gT, int Qc, int Q, int P, int N,
                     int Np, int p0, const int R, int j0, const int nb) {
    for (int r = 0; r < R; r++) {
        real *hp = hs + (size_t)r * (Q + 1) * Np;
        copy_row(hp, ck + (size_t)(p0 + r) * N, N);
        for (int n = N; n < Np; n++) hp[n] = 0;
    }
    rec_rows(hs, Bc, al, dxT, Qc, Q, Np, p0, R, j0, nb);
    bwd_rows(dh, dB, dC, vH, sB, hs, Bc, Cc, al, dxT, gT, Qc, Q, P, Np, p0, R, j0, nb);
}
INLINE void bwd_segment(real *dh, real *dB, real *dC, real *vH, real *sB, real *hs, const real *ck, const real *Bc,
                        const real *Cc, const real *al, const real *dxT, const real *gT, int Qc, int Q, int P, int N,
                        int Np, int j0, const int nb) {
    ROW_PAIRS(P, bwd_pair, dh, dB, dC, vH, sB, hs, ck, Bc, Cc, al, dxT, gT, Qc, Q, P, N, Np);
}

// Per item, chunks last to first and within a chunk head by head: row pair by row pair, the
// chunk's states again from its checkpoint and its steps backwards (bwd_pair), then the per-step
// scalars:
//   dx_t[p] = D gy_t[p] + Δ_t Σ_n dh_t B_t;  dΔ_t = Σ dh_t (B x + A α S_{t-1});  dA = Σ_t Δ α Σ dh_t S_{t-1}
void ssd_scan_backward(real *dx, real *dBh, real *dCh, real *ddlt, real *dA_bh, real *dD_bh,
                       real *work, const real *gy, const real *x, const real *Bm, const real *Cm,
                       const real *dlt, const real *ckpt, const real *A, const real *D,
                       const SsdDims *d, int nt) {
    const int B = d->B, T = d->T, H = d->H, P = d->P, N = d->N, Q = d->Q, ld = d->ld;
    const int nc = ssd_chunks(d), E = H * P, Np = padded(N), nhb = head_blocks(B, H, nt);
    const size_t PN = (size_t)P * N;
    #pragma omp parallel num_threads(nt)
    {
        real *Bc = work + (size_t)omp_get_thread_num() * ssd_backward_work(d);   // (Q,Np)
        real *Cc = Bc + (size_t)Q * Np;                                          // (Q,Np)
        real *hs = Cc + (size_t)Q * Np;                                          // (2,Q+1,Np)
        real *dhall = hs + 2 * (size_t)(Q + 1) * Np;                             // (H,P,Np)
        real *dB = dhall + (size_t)H * P * Np, *dC = dB + (size_t)Q * Np, *vH = dC + (size_t)Q * Np;   // (Q,Np) each
        real *sB = vH + (size_t)Q * Np;                                          // (Q,P)
        real *al = sB + (size_t)Q * P, *dt = al + Q;                             // (Q) each
        real *dxT = dt + Q, *gT = dxT + (size_t)P * Q;                           // (P,Q) each
        double sums[2 * H];   // per head: dA, dD summed over T·P in double (§9.8), on the stack
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int hb = 0; hb < nhb; hb++) {
                const int h0 = hb * H / nhb, h1 = (hb + 1) * H / nhb;
                memset(dhall, 0, (size_t)(h1 - h0) * P * Np * sizeof(real));
                for (int i = 0; i < 2 * (h1 - h0); i++) sums[i] = 0;
                for (int c = nc - 1; c >= 0; c--) {
                    const int t0 = c * Q, Qc = t0 + Q < T ? Q : T - t0;
                    const size_t bt0 = (size_t)b * T + t0;
                    for (int h = h0; h < h1; h++) {
                        const real a = A[h], Dh = D[h];
                        real *dh = dhall + (size_t)(h - h0) * P * Np;
                        const real *ck = ckpt + (((size_t)b * H + h) * nc + c) * PN;
                        const real *xh = x + bt0 * ld + (size_t)h * P, *gh = gy + bt0 * E + (size_t)h * P;
                        load_chunk(Bc, Cc, al, dt, dxT, gT, Bm, Cm, dlt, xh, gh, bt0, Qc, d, h, Np, a);
                        memset(dB, 0, 3 * (size_t)Q * Np * sizeof(real));   // dB, dC, vH
                        FOR_SEGMENTS(Np, bwd_segment, dh, dB, dC, vH, sB, hs, ck, Bc, Cc, al, dxT, gT, Qc, Q, P, N, Np)
                        double dA = 0, dD = 0;
                        for (int l = 0; l < Qc; l++) {
                            const size_t bt = bt0 + l;
                            const real *xt = xh + (size_t)l * ld, *gt = gh + (size_t)l * E, *sBl = sB + (size_t)l * P;
                            real *dxt = dx + bt * ld + (size_t)h * P;
                            real sBx = 0, gx = 0, sH = 0;   // Σ_p x_p sB_p;  Σ_p gy x;  Σ_{p,n} dh_t S_{t-1}
                            for (int p = 0; p < P; p++) {
                                dxt[p] = Dh * gt[p] + dt[l] * sBl[p];
                                sBx += xt[p] * sBl[p];
                                gx += gt[p] * xt[p];
                            }
                            for (int n = 0; n < Np; n++) sH += vH[(size_t)l * Np + n];
                            ddlt[bt * H + h] = sBx + a * al[l] * sH;
                            dA += dt[l] * al[l] * sH;
                            dD += gx;
                            copy_row(dBh + (bt * H + h) * N, dB + (size_t)l * Np, N);
                            copy_row(dCh + (bt * H + h) * N, dC + (size_t)l * Np, N);
                        }
                        sums[2 * (h - h0)] += dA;
                        sums[2 * (h - h0) + 1] += dD;
                    }
                }
                for (int h = h0; h < h1; h++) {
                    dA_bh[(size_t)b * H + h] = (real)sums[2 * (h - h0)];
                    dD_bh[(size_t)b * H + h] = (real)sums[2 * (h - h0) + 1];
                }
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
