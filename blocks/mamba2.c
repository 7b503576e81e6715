// mamba2.c: the Mamba-2 mixer (SSD), symbol 'M' with model.mamba.version 2 (blocks.md §2.1-2.4
// forward and init, §7.2, §7.3, §7.5 backward). Tensor names follow HF Mamba2 / Zamba2.
// x, out: (B,T,C). E = expand·C, H = E/P heads of width P, N state, G groups of B/C, K conv.
//
//   zxbcdt = x W_inᵀ (B,T,2E+2GN+H), split [z (E) | xBC (E+2GN) | dt (H)]
//   xc  = causal depthwise conv_K(xBC) + conv_b;  xbc = silu(xc), split [x (H,P) | B (G,N) | C (G,N)]
//   Δ   = softplus(dt + dt_bias) (threshold 20), clamped to [dt_limit_min, dt_limit_max] if set
//   A   = -exp(A_log)  (H): a scalar per head
//   S_t = exp(Δ_t A_h) S_{t-1} + Δ_t x_t ⊗ B_t[g],   y_t = S_t C_t[g] + D_h x_t    (g = h/(H/G))
//   o   = norm.weight ⊙ GroupRMS(y ⊙ silu(z))   over G contiguous groups of E/G, eps 1e-5
//         (norm_before_gate = False, the Mamba2 and Zamba2 default)
//   out = o W_outᵀ
//
// The scan itself is in ssd_scan.c: training runs the sequential recurrence (exact and simple to
// differentiate, §7.5); the chunked SSD form (§2.4) is there too, forward only, checked against it.
//
// Memory: the forward keeps the scan state only where each chunk of Q = min(chunk_size, T) steps
// starts, (B,H,ceil(T/Q),P,N); the backward recomputes the states of one chunk at a time from it
// (never dividing by exp(ΔA), which underflows: §7.4, §9.6). Cost: one more pass of the recurrence.
//
// Threads: the scan runs one item per (b, h). Reductions that cross items are written as
// per-item partials, (B,T,H,N) for dB/dC and (B,H) for dA/dD, and summed afterwards in a fixed
// order; the other reductions over (b,t) give each thread whole channels. So the gradients are
// the same bits for any thread count, with no atomics.
#include "mamba_keys.h"
#include "model.h"
#include "ops.h"
#include "causal_conv.h"
#include "ssd_scan.h"
#include <string.h>

#define KEY(k) "model.mamba." k
#define GATED_NORM_EPS 1e-5   // Mamba2 RMSNormGated and Zamba2RMSNormGated (§2.1)

typedef struct {
    int C, E, H, P, N, G, K;
    int Dp;                    // in_proj rows 2E+2GN+H: [z | x B C | dt]
    int Cx;                    // conv channels E+2GN: [x | B | C]
    int Q;                     // checkpoint interval, min(chunk_size, T) (set by declare_acts)
    real dt_lo, dt_hi;         // Δ clamp; 0 and +inf when unset (no effect, no mask)
    int nt;                    // threads the per-thread work buffers were sized for
    // parameter indices (L->p[], L->g[]); bconv -1 without conv bias
    int Win, Wconv, bconv, dt_bias, A_log, D, Wnorm, Wout;
    // activation indices: see mamba2_declare_acts
    int zxbcdt, xc, xbc, dlt, ckpt, y, rstd, o;
} Mamba2;

static int mamba_inner(const Config *c) { return (int)(cfg_num(c, KEY("expand")) * cfg_int(c, "model.d_model")); }

// Writes up to 8 divisors of n into buf, "1, 2, 4, ..." (for error messages).
static const char *divisors(long n, char *buf, size_t size) {
    size_t k = 0;
    int count = 0;
    buf[0] = 0;
    for (long i = 1; i <= n && count < 8 && k < size; i++)
        if (n % i == 0) k += snprintf(buf + k, size - k, "%s%ld", count++ ? ", " : "", i);
    return buf;
}

static int mamba2_validate(const Config *c, ConfError *err) {
    double dmin = cfg_num(c, KEY("dt_min")), dmax = cfg_num(c, KEY("dt_max"));
    if (!(dmin > 0))
        return cfg_error(c, KEY("dt_min"), err, "must be > 0: Δ at init is log-uniform in [dt_min, dt_max]");
    if (dmin > dmax)
        return cfg_error(c, KEY("dt_min"), err, "%g is larger than model.mamba.dt_max %g: the init range "
                         "[dt_min, dt_max] would be empty (defaults 0.001 and 0.1)", dmin, dmax);
    long E = mamba_inner(c), P = cfg_int(c, KEY("headdim")), G = cfg_int(c, KEY("ngroups"));
    char buf[128];
    if (E < 1)
        return cfg_error(c, KEY("expand"), err, "expand %g * d_model %ld gives an inner width E below 1: "
                         "use expand >= 1/d_model (Mamba-2 uses 2)", cfg_num(c, KEY("expand")), cfg_int(c, "model.d_model"));
    if (E % P != 0)
        return cfg_error(c, KEY("headdim"), err, "%ld does not divide the inner width E = expand * d_model = %ld "
                         "(heads are E/headdim): use a divisor of %ld, e.g. %s", P, E, E, divisors(E, buf, sizeof buf));
    long H = E / P;
    if (H % G != 0)
        return cfg_error(c, KEY("ngroups"), err, "%ld does not divide the %ld heads (E/headdim = %ld/%ld): "
                         "use a divisor of %ld, e.g. %s", G, H, E, P, H, divisors(H, buf, sizeof buf));
    if (!cfg_is_auto(c, KEY("dt_limit_max")) && !(cfg_num(c, KEY("dt_limit_max")) > cfg_num(c, KEY("dt_limit_min"))))
        return cfg_error(c, KEY("dt_limit_max"), err, "%g is not above model.mamba.dt_limit_min %g: the clamp "
                         "range of Δ would be empty (auto = no upper clamp)", cfg_num(c, KEY("dt_limit_max")),
                         cfg_num(c, KEY("dt_limit_min")));
    return 0;
}

// ----------------------------------------------------------------------------
// declaration and init

static void mamba2_declare(Layer *L) {
    Mamba2 *P = xcalloc(1, sizeof(Mamba2));
    L->priv = P;
    const Config *c = L->cfg;
    P->C = L->model->C; P->E = mamba_inner(c); P->P = (int)cfg_int(c, KEY("headdim"));
    P->H = P->E / P->P; P->G = (int)cfg_int(c, KEY("ngroups"));
    P->N = (int)cfg_int(c, KEY("d_state")); P->K = (int)cfg_int(c, KEY("d_conv"));
    int C = P->C, E = P->E, H = P->H, GN = P->G * P->N, K = P->K;
    P->Cx = E + 2 * GN; P->Dp = E + P->Cx + H;
    P->dt_lo = (real)cfg_num(c, KEY("dt_limit_min"));
    P->dt_hi = cfg_is_auto(c, KEY("dt_limit_max")) ? (real)INFINITY : (real)cfg_num(c, KEY("dt_limit_max"));
    // weight decay on the projection and conv weights only (never A_log, D, dt_bias, norm: §9.2)
    P->Win = layer_param(L, "in_proj.weight", 1, 2, P->Dp, C, 0, 0);
    P->Wconv = layer_param(L, "conv1d.weight", 1, 3, P->Cx, 1, K, 0);
    P->bconv = cfg_bool(c, KEY("conv_bias")) ? layer_param(L, "conv1d.bias", 0, 1, P->Cx, 0, 0, 0) : -1;
    P->dt_bias = layer_param(L, "dt_bias", 0, 1, H, 0, 0, 0);
    P->A_log = layer_param(L, "A_log", 0, 1, H, 0, 0, 0);
    P->D = layer_param(L, "D", 0, 1, H, 0, 0, 0);
    P->Wnorm = layer_param(L, "norm.weight", 0, 1, E, 0, 0, 0);
    P->Wout = layer_param(L, "out_proj.weight", 1, 2, C, E, 0, 0);
}

static SsdDims ssd_dims(const Mamba2 *P, int B, int T) {
    return (SsdDims){.B = B, .T = T, .H = P->H, .P = P->P, .N = P->N, .G = P->G, .Q = P->Q, .ld = P->Cx};
}

static void mamba2_declare_acts(Layer *L, int B, int T) {
    Mamba2 *P = L->priv;
    long Q = cfg_int(L->cfg, KEY("chunk_size"));
    P->Q = (int)(Q < T ? Q : T);
    SsdDims d = ssd_dims(P, B, T);
    size_t BT = (size_t)B * T, E = P->E, H = P->H, N = P->N;
    P->zxbcdt = layer_act(L, BT * P->Dp);   // in_proj output: z for the gate, xBC for the conv grads, dt
    P->xc = layer_act(L, BT * P->Cx);       // conv output before SiLU (for silu')
    P->xbc = layer_act(L, BT * P->Cx);      // x | B | C, the scan's inputs
    P->dlt = layer_act(L, BT * H);          // Δ after softplus and clamp
    P->ckpt = layer_act(L, (size_t)B * H * ssd_chunks(&d) * P->P * N);   // state entering each chunk
    P->y = layer_act(L, BT * E);            // scan output, before the gated norm
    P->rstd = layer_act(L, BT * P->G);      // the gated norm's 1/rms per (token, group)
    P->o = layer_act(L, BT * E);            // gated norm output, out_proj input
    // Scratch. forward: A (H), scan work (nt, ssd_forward_work). backward: A, gy (B,T,E), dzxbcdt (B,T,Dp),
    // dxbc (B,T,E+2GN), per-head dB and dC (B,T,H,N) each, dΔ (B,T,H), per-sequence dA and dD
    // (B,H) each, scan work (nt, ssd_backward_work).
    P->nt = layer_threads();
    layer_scratch(L, H + P->nt * ssd_forward_work(&d));
    layer_scratch(L, H + BT * (E + P->Dp + P->Cx + 2 * H * N + H) + 2 * (size_t)B * H + P->nt * ssd_backward_work(&d));
}

static void mamba2_init(Layer *L, Rng *rng) {
    Mamba2 *P = L->priv;
    const Config *c = L->cfg;
    int C = P->C, E = P->E, H = P->H, K = P->K;
    // PyTorch defaults: Linear U(±1/sqrt(fan_in)); depthwise Conv1d fan_in = K, weight and bias
    init_uniform(L->p[P->Win], (size_t)P->Dp * C, 1 / sqrt((double)C), rng);
    init_uniform(L->p[P->Wconv], (size_t)P->Cx * K, 1 / sqrt((double)K), rng);
    if (P->bconv >= 0) init_uniform(L->p[P->bconv], P->Cx, 1 / sqrt((double)K), rng);
    // dt_bias: one per head (§2.1, §9.4)
    mamba_dt_bias_init(L->p[P->dt_bias], H, c, rng);
    real *A_log = L->p[P->A_log];
    // A = -exp(A_log): Mamba-2 draws A ~ U(1,16) per head; Zamba2 uses A = 1..H (§2.1, §10)
    int range = !strcmp(cfg_str(c, KEY("a_init")), "range");
    for (int h = 0; h < H; h++) A_log[h] = (real)log(range ? h + 1.0 : 1 + 15 * rng_uniform(rng));
    init_const(L->p[P->D], H, 1);
    init_const(L->p[P->Wnorm], E, 1);
    // kaiming_uniform(a=√5) = U(±1/sqrt(E)), shrunk by the number of residual sublayers so that
    // the stream's variance at init does not grow with depth (mamba_ssm _init_weights)
    init_uniform(L->p[P->Wout], (size_t)C * E, 1 / sqrt((double)E) / sqrt((double)L->model->nsub), rng);
}

// ----------------------------------------------------------------------------
// causal depthwise convolution over the Cx channels x|B|C (§2.3 = §1.3, backward §7.3). Its input
// is a column block of zxbcdt: rows of stride ld (= Dp). Output rows have stride Cx.


// ----------------------------------------------------------------------------
// gated grouped RMSNorm, norm_before_gate = False (§2.3, backward §7.2). z: rows of stride ld.
//   v = y ⊙ silu(z);  per token and group of s = E/G channels: r = (mean(v²) + eps)^-½;  o = w ⊙ v r

// sigmoid through exp_vec (ops.h), so that the loops over channels vectorise: libm's exp is a
// scalar call, and these loops run 4 exps per channel and token before this
static inline real sigmoid_v(real x) { return 1 / (1 + exp_vec(-x)); }

static void gated_norm_forward(real *o, real *rstd, const real *y, const real *z, int ld, const real *w,
                               int BT, int E, int G) {
    int s = E / G;
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < BT; bt++)
        for (int g = 0; g < G; g++) {
            size_t i0 = (size_t)bt * E + (size_t)g * s;
            const real *zr = z + (size_t)bt * ld + (size_t)g * s, *yr = y + i0, *wg = w + (size_t)g * s;
            real *orow = o + i0, ss = 0;
            #pragma omp simd reduction(+:ss)
            for (int i = 0; i < s; i++) { real v = yr[i] * (zr[i] * sigmoid_v(zr[i])); orow[i] = v; ss += v * v; }
            real r = 1 / sqrt(ss / s + (real)GATED_NORM_EPS);
            rstd[(size_t)bt * G + g] = r;
            #pragma omp simd
            for (int i = 0; i < s; i++) orow[i] *= wg[i] * r;
        }
}

// g: dL/do (B,T,E) in, dL/dy out (in place). dz: rows of stride ld, overwritten. dw +=.
// pw: (B,T,E) scratch for the terms of dw (the caller lends a buffer that is free at this point).
//   dv_i = r w_i do_i − v_i r³ (1/s) Σ_{j∈group} w_j do_j v_j;  dy = dv silu(z);  dz = dv y silu'(z)
//   dw_i = Σ_rows do_i v_i r
// Rows are independent, so they go to the threads; dw is a sum over rows, so its terms are kept
// and summed afterwards per channel in row order (the same bits for any thread count).
static void gated_norm_backward(real *g, real *dz, int ld, real *dw, real *pw, const real *y, const real *z,
                                const real *w, const real *rstd, int BT, int E, int G) {
    int s = E / G;
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < BT; bt++)
        for (int q = 0; q < G; q++) {
            size_t i0 = (size_t)bt * E + (size_t)q * s;
            const real *zr = z + (size_t)bt * ld + (size_t)q * s, *wq = w + (size_t)q * s, *yr = y + i0;
            real *gr = g + i0, *pr = pw + i0, *dzr = dz + (size_t)bt * ld + (size_t)q * s;
            real r = rstd[(size_t)bt * G + q], dot = 0;
            // first pass: sigmoid(z) parked in dz (overwritten by the second pass), dw's terms, Σ w do v
            #pragma omp simd reduction(+:dot)
            for (int i = 0; i < s; i++) {
                real sg = sigmoid_v(zr[i]), gv = gr[i] * (yr[i] * (zr[i] * sg));
                dzr[i] = sg;
                pr[i] = gv * r;
                dot += wq[i] * gv;
            }
            real c = r * r * r * dot / s;
            #pragma omp simd
            for (int i = 0; i < s; i++) {
                real sg = dzr[i], zi = zr[i], sz = zi * sg, yi = yr[i];
                real dv = r * wq[i] * gr[i] - yi * sz * c;
                gr[i] = dv * sz;
                dzr[i] = dv * yi * (sg * (1 + zi * (1 - sg)));   // silu'(z)
            }
        }
    enum { EBLK = 32 };   // each thread owns blocks of channels and walks every row in order
    #pragma omp parallel for schedule(static)
    for (int e0 = 0; e0 < E; e0 += EBLK) {
        int e1 = e0 + EBLK < E ? e0 + EBLK : E;
        for (int bt = 0; bt < BT; bt++) {
            const real *pr = pw + (size_t)bt * E;
            #pragma omp simd
            for (int e = e0; e < e1; e++) dw[e] += pr[e];
        }
    }
}

// ----------------------------------------------------------------------------
// forward and backward

static inline real delta_of(real pre, real lo, real hi) {
    real d = softplusr(pre);
    return d < lo ? lo : d > hi ? hi : d;
}

static void mamba2_forward(Layer *L, real *out, const real *in, int B, int T) {
    Mamba2 *P = L->priv;
    int C = P->C, E = P->E, H = P->H, Dp = P->Dp, Cx = P->Cx, GN = P->G * P->N, BT = B * T;
    real *zxbcdt = L->a[P->zxbcdt], *xbc = L->a[P->xbc], *dlt = L->a[P->dlt];
    // in_proj: (BT,C) -> (BT,Dp) = [z | xBC | dt]
    matmul_forward(zxbcdt, in, L->p[P->Win], NULL, BT, C, Dp);
    // conv + SiLU on xBC: (BT,Cx)
    causal_conv_forward(L->a[P->xc], xbc, zxbcdt + E, Dp, L->p[P->Wconv], P->bconv >= 0 ? L->p[P->bconv] : NULL,
                 B, T, Cx, P->K);
    // Δ = clamp(softplus(dt + dt_bias)): (BT,H)
    const real *dt_bias = L->p[P->dt_bias];
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < BT; bt++)
        for (int h = 0; h < H; h++)
            dlt[(size_t)bt * H + h] = delta_of(zxbcdt[(size_t)bt * Dp + E + Cx + h] + dt_bias[h], P->dt_lo, P->dt_hi);
    real *A = layer_scratch_ptr(L), *work = A + H;   // A (H), scan work (nt, ssd_forward_work)
    for (int h = 0; h < H; h++) A[h] = -exp(L->p[P->A_log][h]);
    SsdDims d = ssd_dims(P, B, T);
    ssd_scan_forward(L->a[P->y], L->a[P->ckpt], work, xbc, xbc + E, xbc + E + GN, dlt, A, L->p[P->D], &d, P->nt);
    // gated norm with z (the first E columns of zxbcdt): (BT,E)
    gated_norm_forward(L->a[P->o], L->a[P->rstd], L->a[P->y], zxbcdt, Dp, L->p[P->Wnorm], BT, E, P->G);
    // out_proj: (BT,E) -> (BT,C)
    matmul_forward(out, L->a[P->o], L->p[P->Wout], NULL, BT, E, C);
}

static void mamba2_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    Mamba2 *P = L->priv;
    int C = P->C, E = P->E, H = P->H, N = P->N, G = P->G, Dp = P->Dp, Cx = P->Cx, GN = G * N, BT = B * T;
    const real *zxbcdt = L->a[P->zxbcdt], *xc = L->a[P->xc], *xbc = L->a[P->xbc];
    // scratch, as sized in declare_acts
    real *A = layer_scratch_ptr(L);                // (H)
    real *gy = A + H;                              // (BT,E)
    real *dzxbcdt = gy + (size_t)BT * E;           // (BT,Dp)
    real *dxbc = dzxbcdt + (size_t)BT * Dp;        // (BT,Cx)
    real *dBh = dxbc + (size_t)BT * Cx;            // (BT,H,N)
    real *dCh = dBh + (size_t)BT * H * N;          // (BT,H,N)
    real *ddlt = dCh + (size_t)BT * H * N;         // (BT,H)
    real *dA_bh = ddlt + (size_t)BT * H;           // (B,H)
    real *dD_bh = dA_bh + (size_t)B * H;           // (B,H)
    real *work = dD_bh + (size_t)B * H;            // (nt, ssd_backward_work)
    const real *A_log = L->p[P->A_log], *dt_bias = L->p[P->dt_bias];
    for (int h = 0; h < H; h++) A[h] = -exp(A_log[h]);

    // out_proj: d o (BT,E) into gy
    matmul_backward(gy, L->g[P->Wout], NULL, dout, L->a[P->o], L->p[P->Wout], BT, E, C, 0);
    // gated norm: gy becomes dL/dy; dz into the first E columns of dzxbcdt; d norm.weight
    // (dxbc is free until the scan writes it: it holds the norm's dw terms meanwhile)
    gated_norm_backward(gy, dzxbcdt, Dp, L->g[P->Wnorm], dxbc, L->a[P->y], zxbcdt, L->p[P->Wnorm],
                        L->a[P->rstd], BT, E, G);
    // scan: dx into dxbc's x columns; per-head dB, dC; dΔ; per-sequence dA, dD
    SsdDims d = ssd_dims(P, B, T);
    ssd_scan_backward(dxbc, dBh, dCh, ddlt, dA_bh, dD_bh, work, gy, xbc, xbc + E, xbc + E + GN,
                      L->a[P->dlt], L->a[P->ckpt], A, L->p[P->D], &d, P->nt);
    // dB, dC: sum the heads of each group, in head order, into dxbc's B and C columns
    int hpg = H / G;
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < BT; bt++)
        for (int g = 0; g < G; g++)
            for (int n = 0; n < N; n++) {
                real sb = 0, sc = 0;
                for (int h = g * hpg; h < (g + 1) * hpg; h++) {
                    sb += dBh[((size_t)bt * H + h) * N + n];
                    sc += dCh[((size_t)bt * H + h) * N + n];
                }
                dxbc[(size_t)bt * Cx + E + g * N + n] = sb;
                dxbc[(size_t)bt * Cx + E + GN + g * N + n] = sc;
            }
    // dt: d(dt) = dΔ · [Δ not clamped] · softplus'(dt + dt_bias), into dzxbcdt's last H columns
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < BT; bt++)
        for (int h = 0; h < H; h++) {
            real pre = zxbcdt[(size_t)bt * Dp + E + Cx + h] + dt_bias[h], sp = softplusr(pre);
            int clamped = sp < P->dt_lo || sp > P->dt_hi;   // the clamp masks the gradient (§7.5, S7)
            dzxbcdt[(size_t)bt * Dp + E + Cx + h] = clamped ? 0 : ddlt[(size_t)bt * H + h] * softplus_grad(pre);
        }
    // per-head parameters: sums over (b,t) in a fixed order, in double (§9.8)
    for (int h = 0; h < H; h++) {
        double sbias = 0, sA = 0, sD = 0;
        for (int bt = 0; bt < BT; bt++) sbias += dzxbcdt[(size_t)bt * Dp + E + Cx + h];
        for (int b = 0; b < B; b++) { sA += dA_bh[(size_t)b * H + h]; sD += dD_bh[(size_t)b * H + h]; }
        L->g[P->dt_bias][h] += (real)sbias;
        L->g[P->A_log][h] += (real)(sA * A[h]);   // A = -exp(A_log), so dA_log = dA · A
        L->g[P->D][h] += (real)sD;
    }
    // SiLU: dxc = dxbc · silu'(xc), in place
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < (size_t)BT * Cx; i++) {
        real sg = sigmoid_v(xc[i]);
        dxbc[i] *= sg * (1 + xc[i] * (1 - sg));   // silu'(xc)
    }
    // conv: d xBC into dzxbcdt's middle columns; dW_conv, db_conv
    causal_conv_backward(dzxbcdt + E, Dp, L->g[P->Wconv], P->bconv >= 0 ? L->g[P->bconv] : NULL, dxbc,
                  zxbcdt + E, L->p[P->Wconv], B, T, Cx, P->K);
    // in_proj: din = dzxbcdt W_in, dW_in += dzxbcdtᵀ x
    matmul_backward(din, L->g[P->Win], NULL, dzxbcdt, in, L->p[P->Win], BT, C, Dp, 0);
}

// ----------------------------------------------------------------------------
// inference (core/generate.c), one sequence. The state, in reals:
//   win  (K-1, Cx)   conv inputs x|B|C (before the conv) of the K-1 previous positions, oldest
//                    first; zero before the sequence start, as the forward's zero padding
//   S    (H, P, N)   the SSM state after the previous positions
//   work zxbcdt (Dp), xbc (Cx), y (E), o (E), rstd (G): one row of the forward's activations
// Nothing depends on max_T: the state has a fixed size.

typedef struct { real *win, *S, *zx, *xbc, *y, *o, *rstd; } StepState;

static StepState step_state(const Mamba2 *P, real *s) {
    StepState st;
    st.win = s;
    st.S = st.win + (size_t)(P->K - 1) * P->Cx;
    st.zx = st.S + (size_t)P->H * P->P * P->N;
    st.xbc = st.zx + P->Dp;
    st.y = st.xbc + P->Cx;
    st.o = st.y + P->E;
    st.rstd = st.o + P->E;
    return st;
}

static size_t mamba2_state_size(const Layer *L, int max_T) {
    const Mamba2 *P = L->priv;
    return (size_t)(P->K - 1) * P->Cx + (size_t)P->H * P->P * P->N + P->Dp + P->Cx + 2 * (size_t)P->E + P->G;
}

// After forward(B = 1, T): the scan state from the last chunk checkpoint (ssd_final_state), and
// the last K-1 conv inputs, which are columns E..E+Cx of the in_proj output.
static void mamba2_state_from_forward(Layer *L, real *state, int T) {
    Mamba2 *P = L->priv;
    StepState st = step_state(P, state);
    int K = P->K, Cx = P->Cx, E = P->E;
    const real *zxbcdt = L->a[P->zxbcdt], *xbc = L->a[P->xbc];
    for (int j = 0; j < K - 1; j++) {
        int t = T - (K - 1) + j;   // position held in window row j
        if (t < 0) memset(st.win + (size_t)j * Cx, 0, Cx * sizeof(real));
        else memcpy(st.win + (size_t)j * Cx, zxbcdt + (size_t)t * P->Dp + E, Cx * sizeof(real));
    }
    real A[P->H];   // H reals on the stack: no allocation
    for (int h = 0; h < P->H; h++) A[h] = -exp(L->p[P->A_log][h]);
    SsdDims d = ssd_dims(P, 1, T);
    ssd_final_state(st.S, L->a[P->ckpt], xbc, xbc + E, L->a[P->dlt], A, &d, 0, P->nt);
}

// One position of the causal conv + SiLU: win holds the K-1 previous inputs, cur (Cx) this
// position's. Taps in the forward's order (k ascending), so the sums round alike. Then the
// window moves on by one row.
static void conv_step(real *xbc, real *win, const real *cur, const real *W, const real *bias, int Cx, int K) {
    for (int c = 0; c < Cx; c++) {
        const real *w = W + (size_t)c * K;
        real o = bias ? bias[c] : 0;
        for (int k = 0; k < K - 1; k++) o += w[k] * win[(size_t)k * Cx + c];
        o += w[K - 1] * cur[c];
        xbc[c] = silur(o);
    }
    if (K > 1) {
        memmove(win, win + Cx, (size_t)(K - 2) * Cx * sizeof(real));
        memcpy(win + (size_t)(K - 2) * Cx, cur, Cx * sizeof(real));
    }
}

// The forward for one row (C), with the conv and the scan carried by the state.
static void mamba2_step(Layer *L, real *out, const real *in, real *state, int pos) {
    Mamba2 *P = L->priv;
    StepState st = step_state(P, state);
    int C = P->C, E = P->E, H = P->H, Cx = P->Cx, GN = P->G * P->N;
    matmul_forward(st.zx, in, L->p[P->Win], NULL, 1, C, P->Dp);
    conv_step(st.xbc, st.win, st.zx + E, L->p[P->Wconv], P->bconv >= 0 ? L->p[P->bconv] : NULL, Cx, P->K);
    real A[H], dlt[H];
    const real *dt_bias = L->p[P->dt_bias];
    for (int h = 0; h < H; h++) {
        A[h] = -exp(L->p[P->A_log][h]);
        dlt[h] = delta_of(st.zx[E + Cx + h] + dt_bias[h], P->dt_lo, P->dt_hi);
    }
    SsdDims d = ssd_dims(P, 1, 1);
    ssd_scan_step(st.y, st.S, st.xbc, st.xbc + E, st.xbc + E + GN, dlt, A, L->p[P->D], &d, P->nt);
    gated_norm_forward(st.o, st.rstd, st.y, st.zx, P->Dp, L->p[P->Wnorm], 1, E, P->G);
    matmul_forward(out, st.o, L->p[P->Wout], NULL, 1, E, C);
}

// ----------------------------------------------------------------------------
// accounting

static double mamba2_flops_per_token(const Layer *L, long ctx) {
    const Mamba2 *P = L->priv;
    double C = P->C, E = P->E, N = P->N, K = P->K;
    // in_proj and out_proj (2 per multiply-add), the conv (2 per tap), and the recurrence at 5 per
    // (p,n): α·S, (Δx)·B and the add, S·C (2), plus 3 per channel (Δx, D x). Elementwise SiLU,
    // softplus, exp(ΔA) per head and the gated norm are left out, as for Mamba-1.
    return 2 * (C * P->Dp + E * C) + 2.0 * P->Cx * K + 5 * E * N + 3 * E;
}

static double mamba2_cache_elems(const Layer *L, long ctx) {
    const Mamba2 *P = L->priv;
    // conv window over x|B|C, and the (H,P,N) SSM state
    return (double)P->Cx * (P->K - 1) + (double)P->H * P->P * P->N;
}

const BlockType mamba2_block = {
    .name = "mamba2",
    .symbol = 'M',
    .select_key = "model.mamba.version",
    .select_value = 2,
    .role = ROLE_MIXER,
    .module = "mamba",
    .own_norm = 0,
    .residual = 1,
    .cache = CACHE_SSM,
    .keys = mamba_keys,
    .validate = mamba2_validate,
    .declare = mamba2_declare,
    .declare_acts = mamba2_declare_acts,
    .init = mamba2_init,
    .forward = mamba2_forward,
    .backward = mamba2_backward,
    .flops_per_token = mamba2_flops_per_token,
    .cache_elems = mamba2_cache_elems,
    .state_size = mamba2_state_size,
    .state_from_forward = mamba2_state_from_forward,
    .step = mamba2_step,
};
