// ssd_scan.h: the Mamba-2 state-space scan with a scalar A per head (blocks.md §2.3, §2.4, §7.5),
// for blocks/mamba2.c. Per sequence b and head h (group g = h / (H/G)), state S: (P,N):
//
//   S_t = exp(Δ_t A_h) S_{t-1} + Δ_t x_t ⊗ B_t[g],    y_t = S_t C_t[g] + D_h x_t,    S_{-1} = 0
//
// Layouts. x, Bm, Cm are column blocks of one activation whose rows have stride ld (the conv
// output [x | B | C], ld = E + 2GN): x_t at x + bt*ld as (H,P), B_t at Bm + bt*ld as (G,N), C_t
// likewise; bt = b*T + t. Δ: (B,T,H). y: (B,T,E) with E = H*P. A, D: (H).
//
// Checkpoints. The forward keeps the state entering every chunk of Q steps, ckpt (B,H,nc,P,N)
// with nc = ceil(T/Q) (chunk 0's entry is the zero state), and the backward recomputes the
// states inside one chunk at a time from it: memory B·E·N·T/Q instead of B·E·N·T, for one more
// pass of the recurrence. These are exactly the chunk states S_in of the chunked SSD form, so a
// chunked forward can fill them later without touching the backward.
#pragma once
#include "common.h"

typedef struct {
    int B, T;
    int H, P, N, G;   // heads, head width, state size, groups of B/C (G divides H)
    int Q;            // chunk length: checkpoint interval (sequential) or SSD block (chunked)
    int ld;           // row stride of x, Bm, Cm
} SsdDims;

static inline int ssd_chunks(const SsdDims *d) { return (d->T + d->Q - 1) / d->Q; }
// Reals of per-thread work each function needs (callers provide nt times this).
size_t ssd_forward_work(const SsdDims *d);
size_t ssd_backward_work(const SsdDims *d);
size_t ssd_chunked_work(const SsdDims *d);

// Sequential recurrence. y (B,T,E) out; ckpt (B,H,nc,P,N) out. work: (nt, ssd_forward_work).
void ssd_scan_forward(real *y, real *ckpt, real *work, const real *x, const real *Bm, const real *Cm,
                      const real *dlt, const real *A, const real *D, const SsdDims *d, int nt);

// Reverse recurrence (§7.5). gy = dL/dy (B,T,E). Out, all overwritten:
//   dx    (rows of stride ld, like x)  dL/dx
//   dBh, dCh (B,T,H,N)  dL/dB_t[g], dL/dC_t[g] from head h alone (the caller sums the heads of
//         a group in a fixed order: no cross-thread reduction, no atomics)
//   ddlt  (B,T,H)  dL/dΔ (before the clamp mask and softplus')
//   dA_bh, dD_bh (B,H)  dL/dA_h, dL/dD_h from sequence b alone (the caller sums over b)
// work: (nt, ssd_backward_work). Results do not depend on the thread count.
void ssd_scan_backward(real *dx, real *dBh, real *dCh, real *ddlt, real *dA_bh, real *dD_bh,
                       real *work, const real *gy, const real *x, const real *Bm, const real *Cm,
                       const real *dlt, const real *ckpt, const real *A, const real *D,
                       const SsdDims *d, int nt);

// Chunked SSD form (§2.4, forward only): the same y, computed block by block with the stable
// segment sum. A last chunk shorter than Q is what zero padding gives (padded steps have Δ = 0,
// x = 0: decay 1 and no input), so it is simply run short. states (B,H,nc,P,N): the state
// entering each chunk, as ckpt above (NULL: not kept). work: (nt, ssd_chunked_work).
void ssd_chunked_forward(real *y, real *states, real *work, const real *x, const real *Bm,
                         const real *Cm, const real *dlt, const real *A, const real *D,
                         const SsdDims *d, int nt);

// Inference, one sequence. S: (H,P,N), the state after the positions seen so far.
// One position: x (H,P), Bm, Cm (G,N), dlt (H) of this position -> y (H·P); S then includes it.
// The arithmetic is the sequential forward's, in the same order. nt: threads over heads.
void ssd_scan_step(real *y, real *S, const real *x, const real *Bm, const real *Cm, const real *dlt,
                   const real *A, const real *D, const SsdDims *d, int nt);
// The state after positions 0..T-1 of sequence b (T = d->T), from what a forward over the same
// d left behind: the last chunk's entry checkpoint, advanced through the positions of that chunk
// (x, Bm, dlt as the forward read them). S: (H,P,N) out.
void ssd_final_state(real *S, const real *ckpt, const real *x, const real *Bm, const real *dlt,
                     const real *A, const SsdDims *d, int b, int nt);
