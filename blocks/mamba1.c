// mamba1.c: the Mamba-1 mixer (selective SSM, S6), symbol 'M' with model.mamba.version 1
// (blocks.md §1.2-1.6 forward and init, §7.3, §7.4, §7.6 backward). x, out: (B,T,C).
//
//   xz  = x W_inᵀ (B,T,2E);  x' = xz[..., :E], z = xz[..., E:]
//   xc  = causal depthwise conv_K(x') + conv_b;  u = silu(xc)             (B,T,E)
//   dt_lr, Bm, Cm = u W_xᵀ split [R, N, N]      (optional RMSNorm of each: inner_norm)
//   Δ   = softplus(dt_lr W_dtᵀ + b_dt)  (threshold 20);  A = -exp(A_log)  (E,N)
//   h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t Bm_t u_t,   y_t = h_t · Cm_t + D u_t  (per channel e)
//   out = (y ⊙ silu(z)) W_outᵀ
//
// inner_norm "jamba" puts learned RMSNorms on dt_lr (R), Bm (N), Cm (N) right after x_proj
// (JambaMambaMixer, §1.5); "falcon" the same norms without weights (§1.6). x_proj is computed
// as three products, one per row block of W_x, so each of dt_lr, Bm, Cm is a contiguous
// (B,T,width) array: the norms and the dt projection then use ops.h unchanged.
//
// Memory: by default forward keeps every state h_t, (B,E,T,N) reals, the largest activation by
// far (268 MB per layer at E 1024, N 16, B 16, T 256). model.mamba.scan_checkpoint Q > 0 keeps
// only the state at the end of each Q-step chunk, (B,E,ceil(T/Q),N), and backward recomputes a
// chunk's Q states from the previous chunk's saved state into per-thread scratch (Q,N), as the
// CUDA kernel does with Q = 2048 (§7.4): one more forward scan of time for a factor Q of memory.
// The recomputation repeats the forward's arithmetic exactly, so the gradients do not depend on
// Q. One (b, e) channel's states are contiguous, so the scan's inner loops over N walk memory in
// order. Backward never recovers h_{t-1} from h_t by dividing by exp(ΔA) (that underflows for
// large Δ|A|, §7.4).
//
// Threads: the forward scan runs one OpenMP item per (b, e) channel (a static schedule hands each
// thread a contiguous block of channels). The backward scan runs one item per channel e with
// the batch inside, so the reductions over (b,t) for dA_log, D and the dt bias stay in one thread;
// dBm and dCm reduce over channels, into per-thread partial buffers summed afterwards in thread
// order. Same thread count, same bits; no atomics.
#include "causal_conv.h"
#include "mamba_keys.h"
#include "model.h"
#include "ops.h"
#include <omp.h>
#include <string.h>

#define KEY(k) "model.mamba." k

const KeySpec mamba_keys[] = {
    {KEY("version"), KT_INT, "1", 1, 2, NULL, 0,
     "which mixer pattern symbol M builds: 1 = Mamba-1 (selective scan, S6), 2 = Mamba-2 (SSD)"},
    {KEY("d_state"), KT_INT, "16", 1, 4096, NULL, 0, "SSM state size per channel (N)"},
    {KEY("d_conv"), KT_INT, "4", 1, 1024, NULL, 0, "width of the causal depthwise convolution (K)"},
    {KEY("expand"), KT_FLOAT, "2", 0, 1024, NULL, 0, "inner width E = int(expand * d_model)"},
    {KEY("dt_rank"), KT_INT, "auto", 1, 1048576, NULL, 1,
     "version 1: rank R of the Δ projection; auto = ceil(d_model/16)"},
    {KEY("dt_min"), KT_FLOAT, "0.001", 0, 1e4, NULL, 0,
     "Δ at init is log-uniform in [dt_min, dt_max] (through the dt bias)"},
    {KEY("dt_max"), KT_FLOAT, "0.1", 0, 1e4, NULL, 0, "see dt_min"},
    {KEY("dt_init_floor"), KT_FLOAT, "1e-4", 0, 1e4, NULL, 0, "Δ at init is at least this"},
    {KEY("dt_scale"), KT_FLOAT, "1.0", 0, 1e4, NULL, 0,
     "version 1: dt_proj.weight init bound (or value) is dt_scale * dt_rank^-0.5"},
    {KEY("dt_init"), KT_STRING, "random", 0, -1, "random|constant", 0,
     "version 1: dt_proj.weight init: uniform in ±bound, or every entry equal to the bound"},
    {KEY("conv_bias"), KT_BOOL, "true", 0, -1, NULL, 0, "the causal convolution has a bias"},
    {KEY("inner_norm"), KT_STRING, "none", 0, -1, "none|jamba|falcon", 0,
     "version 1: RMSNorm of dt (R), B (N), C (N) after x_proj: jamba = with learned weights, "
     "falcon = without weights, none = Mamba"},
    {KEY("inner_norm_eps"), KT_FLOAT, "1e-6", 0, 1, NULL, 0, "epsilon of the inner_norm RMSNorms"},
    {KEY("scan_checkpoint"), KT_INT, "0", 0, 1048576, NULL, 0,
     "version 1, training memory: 0 keeps every scan state for backward (B*E*T*N reals per layer); "
     "Q > 0 keeps one state per Q positions (B*E*ceil(T/Q)*N) and recomputes the others in backward "
     "(about one more forward scan of time; same gradients)"},
    {KEY("headdim"), KT_INT, "64", 1, 65536, NULL, 0, "version 2: width of one SSM head (P); E must be a multiple"},
    {KEY("ngroups"), KT_INT, "1", 1, 65536, NULL, 0, "version 2: groups sharing one B and C (G); must divide the heads"},
    {KEY("chunk_size"), KT_INT, "64", 1, 1048576, NULL, 0, "version 2: chunk length of the chunked SSD scan"},
    {KEY("dt_limit_min"), KT_FLOAT, "0", 0, 1e4, NULL, 0, "version 2: clamp Δ from below (0: no clamp)"},
    {KEY("dt_limit_max"), KT_FLOAT, "auto", 0, 1e9, NULL, 1, "version 2: clamp Δ from above (auto: no clamp)"},
    {KEY("a_init"), KT_STRING, "uniform", 0, -1, "uniform|range", 0,
     "version 2: A_log init: uniform = log U(1,16) per head (Mamba-2), range = log(1..H) (Zamba2)"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

enum { NORM_NONE, NORM_JAMBA, NORM_FALCON };

typedef struct {
    int C, E, N, R, K;
    int norm;                  // NORM_*
    int Q;                     // scan_checkpoint: 0 = keep every state, else chunk length
    real norm_eps;
    int wid[3], off[3];        // x_proj row blocks dt_lr | Bm | Cm: widths R, N, N and first rows
    int nt;                    // threads the backward's per-thread buffers were sized for
    // parameter indices (L->p[], L->g[]); -1 when absent
    int Win, Wconv, bconv, Wx, Wdt, bdt, A_log, D, Wout, nw[3];
    // activation indices: see mamba1_declare_acts
    int xz, xc, u, raw[3], nrm[3], rstd[3], dpre, h, y, yg;
} Mamba1;

static int mamba_inner(const Config *c) { return (int)(cfg_num(c, KEY("expand")) * cfg_int(c, "model.d_model")); }
static int mamba_dt_rank(const Config *c) {
    if (cfg_is_auto(c, KEY("dt_rank"))) return (int)((cfg_int(c, "model.d_model") + 15) / 16);
    return (int)cfg_int(c, KEY("dt_rank"));
}

static int mamba1_validate(const Config *c, ConfError *err) {
    double dmin = cfg_num(c, KEY("dt_min")), dmax = cfg_num(c, KEY("dt_max"));
    if (!(dmin > 0))
        return cfg_error(c, KEY("dt_min"), err, "must be > 0: Δ at init is log-uniform in [dt_min, dt_max]");
    if (dmin > dmax)
        return cfg_error(c, KEY("dt_min"), err, "%g is larger than model.mamba.dt_max %g: the init range "
                         "[dt_min, dt_max] would be empty (defaults 0.001 and 0.1)", dmin, dmax);
    if (cfg_int(c, KEY("d_conv")) < 1)
        return cfg_error(c, KEY("d_conv"), err, "must be >= 1 (1 = no mixing over time; Mamba uses 4)");
    if (mamba_inner(c) < 1)
        return cfg_error(c, KEY("expand"), err, "expand %g * d_model %ld gives an inner width E below 1: "
                         "use expand >= 1/d_model (Mamba uses 2)", cfg_num(c, KEY("expand")), cfg_int(c, "model.d_model"));
    if (mamba_dt_rank(c) < 1)
        return cfg_error(c, KEY("dt_rank"), err, "must be >= 1 (auto = ceil(d_model/16))");
    return 0;
}

// ----------------------------------------------------------------------------
// declaration and init

static const char *const norm_names[3] = {"dt_layernorm.weight", "b_layernorm.weight", "c_layernorm.weight"};

static void mamba1_declare(Layer *L) {
    Mamba1 *P = xcalloc(1, sizeof(Mamba1));
    L->priv = P;
    const Config *c = L->cfg;
    P->C = L->model->C; P->E = mamba_inner(c); P->R = mamba_dt_rank(c);
    P->N = (int)cfg_int(c, KEY("d_state")); P->K = (int)cfg_int(c, KEY("d_conv"));
    const char *nm = cfg_str(c, KEY("inner_norm"));
    P->norm = !strcmp(nm, "jamba") ? NORM_JAMBA : !strcmp(nm, "falcon") ? NORM_FALCON : NORM_NONE;
    P->norm_eps = (real)cfg_num(c, KEY("inner_norm_eps"));
    P->Q = (int)cfg_int(c, KEY("scan_checkpoint"));
    int C = P->C, E = P->E, N = P->N, R = P->R, K = P->K;
    P->wid[0] = R; P->wid[1] = N; P->wid[2] = N;
    P->off[0] = 0; P->off[1] = R; P->off[2] = R + N;
    // weight decay on the projection and conv weights only (never A_log, D, biases, norms: §9.2)
    P->Win = layer_param(L, "in_proj.weight", 1, 2, 2 * E, C, 0, 0);
    P->Wconv = layer_param(L, "conv1d.weight", 1, 3, E, 1, K, 0);
    P->bconv = cfg_bool(c, KEY("conv_bias")) ? layer_param(L, "conv1d.bias", 0, 1, E, 0, 0, 0) : -1;
    P->Wx = layer_param(L, "x_proj.weight", 1, 2, R + 2 * N, E, 0, 0);
    P->Wdt = layer_param(L, "dt_proj.weight", 1, 2, E, R, 0, 0);
    P->bdt = layer_param(L, "dt_proj.bias", 0, 1, E, 0, 0, 0);
    P->A_log = layer_param(L, "A_log", 0, 2, E, N, 0, 0);
    P->D = layer_param(L, "D", 0, 1, E, 0, 0, 0);
    P->Wout = layer_param(L, "out_proj.weight", 1, 2, C, E, 0, 0);
    for (int s = 0; s < 3; s++)
        P->nw[s] = P->norm == NORM_JAMBA ? layer_param(L, norm_names[s], 0, 1, P->wid[s], 0, 0, 0) : -1;
}

// States kept per channel: every one (Q = 0), or the last of each Q-step chunk (the last slot
// always holds h_{T-1}, the state generation continues from).
static int scan_slots(int T, int Q) { return Q ? (T + Q - 1) / Q : T; }

static void mamba1_declare_acts(Layer *L, int B, int T) {
    Mamba1 *P = L->priv;
    size_t BT = (size_t)B * T, E = P->E, N = P->N;
    P->xz = layer_act(L, BT * 2 * E);        // in_proj output: x' for the conv grads, z for the gate
    P->xc = layer_act(L, BT * E);            // conv output before SiLU (for silu')
    P->u = layer_act(L, BT * E);             // scan input, x_proj input
    for (int s = 0; s < 3; s++) {            // dt_lr, Bm, Cm: raw x_proj outputs ...
        P->raw[s] = layer_act(L, BT * P->wid[s]);
        if (P->norm != NORM_NONE) {          // ... and, normalised, what dt_proj and the scan read
            P->nrm[s] = layer_act(L, BT * P->wid[s]);
            P->rstd[s] = layer_act(L, BT);
        } else { P->nrm[s] = P->raw[s]; P->rstd[s] = -1; }
    }
    P->dpre = layer_act(L, BT * E);          // δ + b_dt before softplus (for softplus')
    P->h = layer_act(L, (size_t)B * E * scan_slots(T, P->Q) * N);   // scan states kept (B,E,S,N)
    P->y = layer_act(L, BT * E);             // scan output before the gate
    P->yg = layer_act(L, BT * E);            // gated output, out_proj input
    // Scratch. forward: A (E,N). backward: A, gy (B,T,E), dxz (B,T,2E), du and dδ (B,T,E), the
    // gradients of [dt_lr|Bm|Cm] normalised and raw (B,T,R+2N) each, per-thread partials of dBm
    // and dCm (nt,B,T,N) each and per-thread scan vectors (nt,4N); with scan_checkpoint Q, each
    // thread's recomputed chunk of states (nt,Q,N) (at most T states).
    P->nt = layer_threads();
    size_t W = (size_t)P->R + 2 * N, Qn = P->Q ? (size_t)(P->Q < T ? P->Q : T) * N : 0;
    layer_scratch(L, E * N + BT * 5 * E + 2 * BT * W + P->nt * (2 * BT * N + 4 * N + Qn));
}

static void mamba1_init(Layer *L, Rng *rng) {
    Mamba1 *P = L->priv;
    const Config *c = L->cfg;
    int C = P->C, E = P->E, N = P->N, R = P->R, K = P->K;
    // PyTorch defaults: Linear U(±1/sqrt(fan_in)); depthwise Conv1d fan_in = K, weight and bias
    init_uniform(L->p[P->Win], (size_t)2 * E * C, 1 / sqrt((double)C), rng);
    init_uniform(L->p[P->Wconv], (size_t)E * K, 1 / sqrt((double)K), rng);
    if (P->bconv >= 0) init_uniform(L->p[P->bconv], E, 1 / sqrt((double)K), rng);
    init_uniform(L->p[P->Wx], (size_t)(R + 2 * N) * E, 1 / sqrt((double)E), rng);
    double s = pow((double)R, -0.5) * cfg_num(c, KEY("dt_scale"));
    if (!strcmp(cfg_str(c, KEY("dt_init")), "constant")) init_const(L->p[P->Wdt], (size_t)E * R, s);
    else init_uniform(L->p[P->Wdt], (size_t)E * R, s, rng);
    mamba_dt_bias_init(L->p[P->bdt], E, c, rng);
    real *A_log = L->p[P->A_log];   // S4D-real: A = -(1, 2, ..., N) in every channel
    for (int e = 0; e < E; e++)
        for (int n = 0; n < N; n++) A_log[(size_t)e * N + n] = (real)log((double)(n + 1));
    init_const(L->p[P->D], E, 1);
    // kaiming_uniform(a=√5) = U(±1/sqrt(E)), shrunk by the number of residual sublayers so that
    // the stream's variance at init does not grow with depth (mamba_ssm _init_weights)
    init_uniform(L->p[P->Wout], (size_t)C * E, 1 / sqrt((double)E) / sqrt((double)L->model->nsub), rng);
    for (int i = 0; i < 3; i++) if (P->nw[i] >= 0) init_const(L->p[P->nw[i]], P->wid[i], 1);
}

// ----------------------------------------------------------------------------
// causal depthwise convolution (§1.3, §7.3). x' is the first half of each xz row (stride 2E).


// ----------------------------------------------------------------------------
// selective scan (§1.3, §7.4). Per channel (b, e), A row a = A[e,:] (N):
//   h_t = exp(Δ_t a) ⊙ h_{t-1} + Δ_t u_t Bm_t,  y_t = h_t·Cm_t + D_e u_t,  Δ_t = softplus(dpre_t)

// The N-wide dot products and sums below may be summed in any fixed order, and a*b+c may fuse
// into one FMA: without this, GCC keeps the source's strict left-to-right order, a chain of N
// dependent scalar adds per time step that costs as much as the rest of the scan. The order is
// still fixed by the build, so results stay bitwise reproducible and independent of the threads.
#pragma GCC push_options
#pragma GCC optimize("associative-math", "no-signed-zeros", "no-trapping-math", "fp-contract=fast")

// h: (B,E,S,N) out, S = scan_slots(T, Q): every state (Q = 0), or the state at the end of each
// Q-step chunk. y: (B,T,E) out. u, dpre: (B,T,E). Bm, Cm: (B,T,N). A: (E,N).
static void scan_forward(real *h, real *y, const real *u, const real *dpre, const real *Bm,
                         const real *Cm, const real *A, const real *D, int B, int T, int E, int N, int Q) {
    size_t S = scan_slots(T, Q);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            const real *a = A + (size_t)e * N;
            // ht: the slot of h_t. It moves on every step (Q = 0), or at the start of each chunk:
            // within a chunk it is updated in place and ends up holding the chunk's last state,
            // and a chunk's first step reads the previous chunk's slot
            real *ht = h + ((size_t)b * E + e) * S * N;
            int every = Q ? Q : 1, k = 0;   // k = t mod every, without a division per step
            for (int t = 0; t < T; t++) {
                size_t bt = (size_t)b * T + t;
                real dt = softplusr(dpre[bt * E + e]), ut = u[bt * E + e], dtu = dt * ut;
                const real *Bt = Bm + bt * N, *Ct = Cm + bt * N;
                real acc = 0;
                if (t == 0) {   // h_{-1} = 0
                    #pragma omp simd reduction(+:acc)
                    for (int n = 0; n < N; n++) { ht[n] = dtu * Bt[n]; acc += ht[n] * Ct[n]; }
                } else {
                    const real *hp = ht;
                    if (++k == every) { k = 0; ht += N; }
                    #pragma omp simd reduction(+:acc)
                    for (int n = 0; n < N; n++) { ht[n] = exp_vec(dt * a[n]) * hp[n] + dtu * Bt[n]; acc += ht[n] * Ct[n]; }
                }
                y[bt * E + e] = acc + D[e] * ut;
            }
        }
}

// Scan checkpointing: the states of positions t0..t1-1 of channel (b, e) into st (t1-t0, N),
// from the state hin before t0, with scan_forward's arithmetic (so the bits are the forward's).
static void scan_chunk_states(real *st, const real *hin, const real *a, const real *u, const real *dpre,
                              const real *Bm, int b, int e, int t0, int t1, int T, int E, int N) {
    for (int t = t0; t < t1; t++) {
        size_t bt = (size_t)b * T + t;
        real dt = softplusr(dpre[bt * E + e]), dtu = dt * u[bt * E + e];
        const real *Bt = Bm + bt * N;
        real *ht = st + (size_t)(t - t0) * N;
        const real *hp = t > t0 ? ht - N : hin;
        if (t == 0) {
            #pragma omp simd
            for (int n = 0; n < N; n++) ht[n] = dtu * Bt[n];
        } else {
            #pragma omp simd
            for (int n = 0; n < N; n++) ht[n] = exp_vec(dt * a[n]) * hp[n] + dtu * Bt[n];
        }
    }
}

// Reverse scan. gy = dL/dy (B,T,E). h: the forward's kept states (B,E,S,N). Out: du (B,T,E)
// overwritten, ddpre = dL/d(δ+b_dt) (B,T,E) overwritten, dBp/dCp: per-thread partials (nt,B,T,N)
// of dL/dBm, dL/dCm (zeroed here), gA_log, gD, gbdt accumulated. work: (nt,4N). hq: (nt,Q,N),
// the recomputed chunks (Q > 0 only). Returns the number of partials in use.
static int scan_backward(real *du, real *ddpre, real *dBp, real *dCp, real *work, real *hq,
                         real *gA_log, real *gD, real *gbdt, const real *gy, const real *h,
                         const real *u, const real *dpre, const real *Bm, const real *Cm,
                         const real *A, const real *D, int B, int T, int E, int N, int Q, int nt) {
    size_t BTN = (size_t)B * T * N, S = scan_slots(T, Q);
    int QL = Q ? (Q < T ? Q : T) : T, nc = Q ? (int)S : 1;   // chunk length, chunks
    int used = 1;
    #pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num();
        #pragma omp single
        used = omp_get_num_threads();
        real *dBt_ = dBp + tid * BTN, *dCt_ = dCp + tid * BTN;
        memset(dBt_, 0, BTN * sizeof(real));
        memset(dCt_, 0, BTN * sizeof(real));
        // dh: running dL/dh carried backwards; dA: Σ_{b,t} dL/dA[e,:]; zero: h_{-1}
        real *dh = work + (size_t)tid * 4 * N, *dA = dh + N, *zero = dA + N;
        real *buf = Q ? hq + (size_t)tid * QL * N : NULL;
        for (int n = 0; n < N; n++) zero[n] = 0;
        #pragma omp for schedule(static)
        for (int e = 0; e < E; e++) {
            const real *a = A + (size_t)e * N;
            real dDe = 0, dbe = 0;
            for (int n = 0; n < N; n++) dA[n] = 0;
            for (int b = 0; b < B; b++) {
                const real *hs = h + ((size_t)b * E + e) * S * N;
                for (int n = 0; n < N; n++) dh[n] = 0;   // dh_{T} = 0
                for (int c = nc - 1; c >= 0; c--) {
                    // chunk c: positions t0..t1-1, entered from hin; st holds their states
                    int t0 = c * QL, t1 = t0 + QL < T ? t0 + QL : T;
                    const real *hin = c ? hs + (size_t)(c - 1) * N : zero, *st = hs;
                    if (Q) { scan_chunk_states(buf, hin, a, u, dpre, Bm, b, e, t0, t1, T, E, N); st = buf; }
                    for (int t = t1 - 1; t >= t0; t--) {
                        size_t bt = (size_t)b * T + t;
                        real x = dpre[bt * E + e], dt = softplusr(x), ut = u[bt * E + e], dtu = dt * ut;
                        real g = gy[bt * E + e], sB = 0, sA = 0;
                        const real *Bt = Bm + bt * N, *Ct = Cm + bt * N, *ht = st + (size_t)(t - t0) * N;
                        const real *hp = t > t0 ? ht - N : hin;
                        real *dBt = dBt_ + bt * N, *dCt = dCt_ + bt * N;
                        #pragma omp simd reduction(+:sB, sA)
                        for (int n = 0; n < N; n++) {
                            // on entry dh holds exp(Δ_{t+1} a) dh_{t+1}; add this step's output path
                            real dan = exp_vec(dt * a[n]);
                            real dhn = dh[n] + g * Ct[n];
                            dCt[n] += g * ht[n];
                            dBt[n] += dhn * dtu;
                            sB += dhn * Bt[n];
                            real q = dhn * dan * hp[n];     // dh_t · exp(Δ_t a) · h_{t-1}
                            dA[n] += q * dt;
                            sA += q * a[n];
                            dh[n] = dhn * dan;              // carried to step t-1
                        }
                        du[bt * E + e] = D[e] * g + dt * sB;
                        dDe += g * ut;
                        // dΔ = Σ_n dh (Bm u + a exp(Δa) h_{t-1});  dδ = dΔ softplus'(δ + b)
                        real dd = (ut * sB + sA) * softplus_grad(x);
                        ddpre[bt * E + e] = dd;
                        dbe += dd;
                    }
                }
            }
            gD[e] += dDe;
            gbdt[e] += dbe;
            // A = -exp(A_log), so dA_log = dA ⊙ A
            for (int n = 0; n < N; n++) gA_log[(size_t)e * N + n] += dA[n] * a[n];
        }
    }
    return used;
}

// Generation, one position (state h: (E,N), updated in place). u, dpre: (E). Bm, Cm: (N).
// A: (E,N). yg (E) out: y ⊙ silu(z), z = xz[E:]. The same arithmetic per channel as scan_forward.
static void scan_step(real *h, real *yg, const real *u, const real *dpre, const real *Bm, const real *Cm,
                      const real *A, const real *D, const real *z, int pos, int E, int N) {
    #pragma omp parallel for schedule(static) if (E * N >= 4096)
    for (int e = 0; e < E; e++) {
        const real *a = A + (size_t)e * N;
        real dt = softplusr(dpre[e]), ut = u[e], dtu = dt * ut, acc = 0;
        real *ht = h + (size_t)e * N;
        if (pos == 0) {   // h_{-1} = 0, whatever the buffer holds
            #pragma omp simd reduction(+:acc)
            for (int n = 0; n < N; n++) { ht[n] = dtu * Bm[n]; acc += ht[n] * Cm[n]; }
        } else {
            #pragma omp simd reduction(+:acc)
            for (int n = 0; n < N; n++) { ht[n] = exp_vec(dt * a[n]) * ht[n] + dtu * Bm[n]; acc += ht[n] * Cm[n]; }
        }
        yg[e] = (acc + D[e] * ut) * silur(z[e]);
    }
}

#pragma GCC pop_options

// ----------------------------------------------------------------------------
// forward and backward

static void mamba1_forward(Layer *L, real *out, const real *in, int B, int T) {
    Mamba1 *P = L->priv;
    int C = P->C, E = P->E, N = P->N, R = P->R, BT = B * T;
    real *xz = L->a[P->xz], *xc = L->a[P->xc], *u = L->a[P->u], *dpre = L->a[P->dpre];
    real *y = L->a[P->y], *yg = L->a[P->yg];
    // in_proj: (BT,C) -> (BT,2E)
    matmul_forward(xz, in, L->p[P->Win], NULL, BT, C, 2 * E);
    // conv + SiLU on the x half: (BT,E)
    causal_conv_forward(xc, u, xz, 2 * E, L->p[P->Wconv], P->bconv >= 0 ? L->p[P->bconv] : NULL, B, T, E, P->K);
    // x_proj, one row block at a time: dt_lr (BT,R), Bm (BT,N), Cm (BT,N); then the inner norms
    for (int s = 0; s < 3; s++) {
        matmul_forward(L->a[P->raw[s]], u, L->p[P->Wx] + (size_t)P->off[s] * E, NULL, BT, E, P->wid[s]);
        if (P->norm != NORM_NONE)
            rmsnorm_forward(L->a[P->nrm[s]], L->a[P->rstd[s]], L->a[P->raw[s]],
                            P->nw[s] >= 0 ? L->p[P->nw[s]] : NULL, BT, P->wid[s], P->norm_eps);
    }
    // δ + b_dt: (BT,R) -> (BT,E); the softplus happens inside the scan
    matmul_forward(dpre, L->a[P->nrm[0]], L->p[P->Wdt], L->p[P->bdt], BT, R, E);
    real *A = layer_scratch_ptr(L);   // (E,N)
    const real *A_log = L->p[P->A_log];
    for (size_t i = 0; i < (size_t)E * N; i++) A[i] = -exp(A_log[i]);
    scan_forward(L->a[P->h], y, u, dpre, L->a[P->nrm[1]], L->a[P->nrm[2]], A, L->p[P->D], B, T, E, N, P->Q);
    // gate: yg = y ⊙ silu(z)
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < BT; bt++)
        for (int e = 0; e < E; e++)
            yg[(size_t)bt * E + e] = y[(size_t)bt * E + e] * silur(xz[(size_t)bt * 2 * E + E + e]);
    // out_proj: (BT,E) -> (BT,C)
    matmul_forward(out, yg, L->p[P->Wout], NULL, BT, E, C);
}

static void mamba1_backward(Layer *L, real *din, const real *dout, const real *in, int B, int T) {
    Mamba1 *P = L->priv;
    int C = P->C, E = P->E, N = P->N, R = P->R, BT = B * T, W = R + 2 * N;
    size_t BTE = (size_t)BT * E;
    const real *xz = L->a[P->xz], *xc = L->a[P->xc], *u = L->a[P->u], *y = L->a[P->y];
    // scratch, as sized in declare_acts
    real *A = layer_scratch_ptr(L);          // (E,N)
    real *gy = A + (size_t)E * N;            // (BT,E)
    real *dxz = gy + BTE;                    // (BT,2E)
    real *du = dxz + 2 * BTE;                // (BT,E)
    real *ddpre = du + BTE;                  // (BT,E)
    real *dnrm = ddpre + BTE;                // (BT,R) | (BT,N) | (BT,N): d dt_lr, dBm, dCm
    real *draw = dnrm + (size_t)BT * W;      // the same for the raw x_proj outputs
    real *dBp = draw + (size_t)BT * W;       // (nt,BT,N)
    real *dCp = dBp + (size_t)P->nt * BT * N;
    real *work = dCp + (size_t)P->nt * BT * N;   // (nt,4N)
    real *hq = work + (size_t)P->nt * 4 * N;      // (nt,Q,N) when scan_checkpoint Q > 0
    real *dseg[3], *rseg[3];
    for (int s = 0; s < 3; s++) {
        dseg[s] = dnrm + (size_t)BT * P->off[s];
        rseg[s] = P->norm != NORM_NONE ? draw + (size_t)BT * P->off[s] : dseg[s];
    }
    const real *A_log = L->p[P->A_log];
    for (size_t i = 0; i < (size_t)E * N; i++) A[i] = -exp(A_log[i]);

    // out_proj: d yg (BT,E) into gy
    matmul_backward(gy, L->g[P->Wout], NULL, dout, L->a[P->yg], L->p[P->Wout], BT, E, C, 0);
    // gate: dz = d yg · y · silu'(z) (second half of dxz); gy = d yg · silu(z)
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < BT; bt++)
        for (int e = 0; e < E; e++) {
            size_t i = (size_t)bt * E + e, iz = (size_t)bt * 2 * E + E + e;
            real z = xz[iz], g = gy[i];
            dxz[iz] = g * y[i] * silu_grad(z);
            gy[i] = g * silur(z);
        }
    // scan: du, dδ, per-thread dBm/dCm partials; dA_log, dD, db_dt
    int nb = scan_backward(du, ddpre, dBp, dCp, work, hq, L->g[P->A_log], L->g[P->D], L->g[P->bdt], gy,
                           L->a[P->h], u, L->a[P->dpre], L->a[P->nrm[1]], L->a[P->nrm[2]], A,
                           L->p[P->D], B, T, E, N, P->Q, P->nt);
    // dBm, dCm: sum the partials in thread order
    real *dB = dseg[1], *dC = dseg[2];
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < (size_t)BT * N; i++) {
        real sb = 0, sc = 0;
        for (int k = 0; k < nb; k++) { sb += dBp[k * (size_t)BT * N + i]; sc += dCp[k * (size_t)BT * N + i]; }
        dB[i] = sb; dC[i] = sc;
    }
    // dt_proj (its bias was reduced in the scan): d dt_lr = dδ W_dt, dW_dt += dδᵀ dt_lr
    matmul_backward(dseg[0], L->g[P->Wdt], NULL, ddpre, L->a[P->nrm[0]], L->p[P->Wdt], BT, R, E, 0);
    // inner norms, with the full RMSNorm Jacobian (§7.6), then x_proj: du += d[dt_lr|Bm|Cm] W_x
    for (int s = 0; s < 3; s++) {
        if (P->norm != NORM_NONE) {
            memset(rseg[s], 0, (size_t)BT * P->wid[s] * sizeof(real));
            int w = P->nw[s];
            rmsnorm_backward(rseg[s], w >= 0 ? L->g[w] : NULL, dseg[s], L->a[P->raw[s]],
                             w >= 0 ? L->p[w] : NULL, L->a[P->rstd[s]], BT, P->wid[s]);
        }
        size_t o = (size_t)P->off[s] * E;
        matmul_backward(du, L->g[P->Wx] + o, NULL, rseg[s], u, L->p[P->Wx] + o, BT, E, P->wid[s], 1);
    }
    // SiLU: dxc = du · silu'(xc), in place
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BTE; i++) du[i] *= silu_grad(xc[i]);
    // conv: dx' into the first half of dxz; dW_conv, db_conv
    causal_conv_backward(dxz, 2 * E, L->g[P->Wconv], P->bconv >= 0 ? L->g[P->bconv] : NULL, du, xz, L->p[P->Wconv],
                  B, T, E, P->K);
    // in_proj: din = dxz W_in, dW_in += dxzᵀ x
    matmul_backward(din, L->g[P->Win], NULL, dxz, in, L->p[P->Win], BT, C, 2 * E, 0);
}

// ----------------------------------------------------------------------------
// inference (core/generate.c): one sequence, one position at a time
//
// State, in reals: the conv window (K-1, E) of the last K-1 inputs x' (oldest first), the SSM
// state h (E,N), A = -exp(A_log) (E,N), then one row of workspace: xz (2E), xc (E), u (E),
// [dt_lr|Bm|Cm] raw and normalised (R+2N each), their rstd (3), dpre (E), yg (E). None of it
// depends on max_T. A is computed once per sequence (by state_from_forward, or by the step at
// position 0; the parameters do not change during generation): its E·N exps in every step were a
// quarter of the decode time.

static size_t mamba1_state_size(const Layer *L, int max_T) {
    const Mamba1 *P = L->priv;
    size_t E = P->E, N = P->N, W = (size_t)P->R + 2 * N;
    return (size_t)(P->K - 1) * E + 2 * E * N + 2 * E + E + E + 2 * W + 3 + E + E;
}

// A = -exp(A_log), exactly as the forward computes it
static void fill_A(const Mamba1 *P, const Layer *L, real *A) {
    const real *A_log = L->p[P->A_log];
    for (size_t i = 0; i < (size_t)P->E * P->N; i++) A[i] = -exp(A_log[i]);
}

static void mamba1_state_from_forward(Layer *L, real *state, int T) {
    Mamba1 *P = L->priv;
    int E = P->E, N = P->N, K = P->K;
    const real *xz = L->a[P->xz];    // (T,2E), x' = first half of each row
    real *win = state, *h = state + (size_t)(K - 1) * E;
    for (int k = 0; k < K - 1; k++) {   // row k = input of position T-(K-1)+k
        int t = T - (K - 1) + k;
        if (t >= 0) memcpy(win + (size_t)k * E, xz + (size_t)t * 2 * E, E * sizeof(real));
        else memset(win + (size_t)k * E, 0, E * sizeof(real));
    }
    // the state after position T-1: the last of channel e's S kept states (1,E,S,N), whether
    // forward kept every state or one per chunk
    const real *hs = L->a[P->h];
    size_t S = scan_slots(T, P->Q);
    for (int e = 0; e < E; e++)
        memcpy(h + (size_t)e * N, hs + ((size_t)e * S + S - 1) * N, N * sizeof(real));
    fill_A(P, L, h + (size_t)E * N);
}

static void mamba1_step(Layer *L, real *out, const real *in, real *state, int pos) {
    Mamba1 *P = L->priv;
    int C = P->C, E = P->E, N = P->N, R = P->R, K = P->K, W = R + 2 * N;
    real *win = state, *h = win + (size_t)(K - 1) * E, *A = h + (size_t)E * N;
    real *xz = A + (size_t)E * N, *xc = xz + 2 * E, *u = xc + E;
    real *raw = u + E, *nrm = raw + W, *rstd = nrm + W, *dpre = rstd + 3, *yg = dpre + E;
    if (P->norm == NORM_NONE) nrm = raw;
    // position 0: nothing came before, whatever the buffer holds (scan_step ignores h there)
    if (pos == 0) { memset(win, 0, (size_t)(K - 1) * E * sizeof(real)); fill_A(P, L, A); }
    matmul_forward(xz, in, L->p[P->Win], NULL, 1, C, 2 * E);
    causal_conv_step(xc, u, win, xz, L->p[P->Wconv], P->bconv >= 0 ? L->p[P->bconv] : NULL, E, K);
    for (int s = 0; s < 3; s++) {
        matmul_forward(raw + P->off[s], u, L->p[P->Wx] + (size_t)P->off[s] * E, NULL, 1, E, P->wid[s]);
        if (P->norm != NORM_NONE)
            rmsnorm_forward(nrm + P->off[s], rstd + s, raw + P->off[s], P->nw[s] >= 0 ? L->p[P->nw[s]] : NULL,
                            1, P->wid[s], P->norm_eps);
    }
    matmul_forward(dpre, nrm, L->p[P->Wdt], L->p[P->bdt], 1, R, E);
    scan_step(h, yg, u, dpre, nrm + R, nrm + R + N, A, L->p[P->D], xz + E, pos, E, N);
    matmul_forward(out, yg, L->p[P->Wout], NULL, 1, E, C);
}

// ----------------------------------------------------------------------------
// accounting

static double mamba1_flops_per_token(const Layer *L, long ctx) {
    const Mamba1 *P = L->priv;
    double C = P->C, E = P->E, N = P->N, R = P->R, K = P->K;
    // in_proj, x_proj, dt_proj, out_proj (2 per multiply-add), the conv (2EK), and the scan at
    // 9 per (e,n): ΔA, exp (counted as 1), decay·h, ΔuB (2), add, h·C (2), plus a share of the
    // per-channel work (softplus, D u). Elementwise SiLU, gate and inner norms are left out.
    return 2 * (C * 2 * E + E * (R + 2 * N) + R * E + E * C) + 2 * E * K + 9 * E * N;
}

static double mamba1_cache_elems(const Layer *L, long ctx) {
    const Mamba1 *P = L->priv;
    return (double)P->E * (P->K - 1) + (double)P->E * P->N;   // conv window + SSM state
}

void mamba_dt_bias_init(real *bias, int n, const Config *c, Rng *rng) {
    // dt + log(-expm1(-dt)) = log(expm1(dt)) = softplus⁻¹(dt), without overflow for large dt
    double lo = log(cfg_num(c, KEY("dt_min"))), hi = log(cfg_num(c, KEY("dt_max")));
    double floor_ = cfg_num(c, KEY("dt_init_floor"));
    for (int i = 0; i < n; i++) {
        double dt = fmax(exp(rng_uniform(rng) * (hi - lo) + lo), floor_);
        bias[i] = (real)(dt + log(-expm1(-dt)));
    }
}

const BlockType mamba1_block = {
    .name = "mamba1",
    .symbol = 'M',
    .select_key = "model.mamba.version",
    .select_value = 1,
    .role = ROLE_MIXER,
    .module = "mamba",
    .own_norm = 0,
    .residual = 1,
    .cache = CACHE_SSM,
    .keys = mamba_keys,
    .validate = mamba1_validate,
    .declare = mamba1_declare,
    .declare_acts = mamba1_declare_acts,
    .init = mamba1_init,
    .forward = mamba1_forward,
    .backward = mamba1_backward,
    .flops_per_token = mamba1_flops_per_token,
    .cache_elems = mamba1_cache_elems,
    .state_size = mamba1_state_size,
    .state_from_forward = mamba1_state_from_forward,
    .step = mamba1_step,
};
