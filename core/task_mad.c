// task_mad.c: the six MAD-lab synthetic tasks (athms/mad-lab at 0f49a45, mad/data/instances.py;
// toolkits.md §2.2), one registered task each so the run store names them:
//
//   data.task            MAD name                  MAD baseline (model.vocab_size V, data.seq_len L)
//   mad_recall           in-context-recall         V 16, L 128
//   mad_noisy_recall     noisy-in-context-recall   V 32 (16 of them noise), L 128, frac_noise 0.2
//   mad_fuzzy_recall     fuzzy-in-context-recall   V 16, L 128, k_motif_size = v_motif_size = 3
//   mad_selective_copy   selective-copying         V 16, L 256, num_tokens_to_copy 16
//   mad_compression      compression               V 16, L 32
//   mad_memorization     memorization              V 256, L 32, 256 training sequences
//
// MAD's vocabulary is the model's: V is model.vocab_size and L is data.seq_len (configs/mad-*.yaml
// carry the baselines). The data.mad.* keys default to MADConfig and the task yml baselines;
// "auto" picks the task's own baseline. Like MAD, token 0 is an ordinary key/content token.
//
// Our interface labels position t with the token to predict after reading tokens[0..t]. MAD's
// recall generators build L tokens and return (x[:-1], target[1:]), so the example here is those
// L-1 tokens (L without multi_query, whose copy prefix adds one), and in training (is_training)
// every position is labelled with the next token, exactly MAD's plain LM loss; validation and
// test label only the values of repeated keys. Selective copying, compression and memorization
// have no train/test difference in MAD and none here.
//
// Deliberate differences from MAD, each repeated where it happens:
//  - Noise tokens are never targets, in training either (MAD's training LM loss asks the model
//    to predict uniformly random noise, an irreducible loss against the task's premise that
//    noise is to be ignored).
//  - Compression is a causal variant (see gen_compression).
//  - Examples are generated from (data.seed, split, index): see the bug list in gen_* comments.
//  - Accuracy in train.c is micro-averaged over labelled positions; MAD reports torchmetrics'
//    MulticlassAccuracy, whose default average is 'macro' (mean over target classes).
//  - MAD has no validation split (it early-stops on the test split); valid here is a third
//    disjoint stream of the same distribution as test.
#include "task.h"
#include "common.h"
#include <stdlib.h>
#include <string.h>

static const KeySpec mad_keys[] = {
    {"data.mad.train_examples", KT_INT, "auto", 1, 1e12, NULL, 1,
     "MAD: training sequences (auto: 12800, memorization 256, as MAD's baselines)"},
    {"data.mad.valid_examples", KT_INT, "1280", 0, 1e12, NULL, 0, "MAD: validation sequences (MAD has none; same distribution as test)"},
    {"data.mad.test_examples", KT_INT, "1280", 0, 1e12, NULL, 0, "MAD: test sequences (num_test_examples)"},
    {"data.mad.train_labels", KT_STRING, "all", 0, -1, "all|queries", 0,
     "MAD recall tasks: training labels every next token (all, MAD's is_training) or only the scored queries"},
    {"data.mad.multi_query", KT_BOOL, "true", 0, -1, NULL, 0,
     "MAD recall tasks: score every repeated key (true, the benchmark) or only a final probe after a copy prefix V-1"},
    {"data.mad.frac_noise", KT_FLOAT, "auto", 0, 0.999, NULL, 1,
     "MAD: probability that a key-value slot (a token, in compression) is noise (auto: 0.2 for mad_noisy_recall, else 0)"},
    {"data.mad.noise_vocab_size", KT_INT, "auto", 0, 1 << 24, NULL, 1,
     "MAD: noise tokens, taken from the top of the vocabulary below any special token (auto: 16 for mad_noisy_recall, else 0)"},
    {"data.mad.k_motif_size", KT_INT, "3", 1, 64, NULL, 0, "MAD fuzzy recall: longest key, in tokens (keys span 1..k_motif_size; test keys the longest)"},
    {"data.mad.v_motif_size", KT_INT, "3", 1, 64, NULL, 0, "MAD fuzzy recall: longest value, in tokens (values span 1..v_motif_size)"},
    {"data.mad.num_tokens_to_copy", KT_INT, "16", 1, 1 << 20, NULL, 0, "MAD selective copying: content tokens to copy"},
    {NULL, 0, NULL, 0, 0, NULL, 0, NULL}};

enum { MAD_RECALL, MAD_NOISY, MAD_FUZZY, MAD_SELCOPY, MAD_COMPRESS, MAD_MEMO, MAD_NTASKS };
static const char *const mad_names[MAD_NTASKS] = {"mad_recall", "mad_noisy_recall", "mad_fuzzy_recall",
                                                  "mad_selective_copy", "mad_compression", "mad_memorization"};

typedef struct {
    int kind, V, L, mq, train_all, noise_vocab, kmax, vmax, ncopy;
    double frac;
    uint64_t seed;
    long count[3];
    int *memo_map;   // memorization: value of every key, fixed by data.seed
} Mad;

static int mad_kind(const Config *c) {
    const char *t = cfg_str(c, "data.task");
    for (int k = 0; k < MAD_NTASKS; k++) if (!strcmp(t, mad_names[k])) return k;
    return -1;
}

// Reads the keys with the task's defaults and checks MAD's constraints (its asserts, and the
// vocabulary each task needs), saying what would be valid.
static int mad_load(const Config *c, Mad *m, ConfError *err) {
    memset(m, 0, sizeof *m);
    m->kind = mad_kind(c);
    if (m->kind < 0) return cfg_error(c, "data.task", err, "not a MAD task: %s", cfg_str(c, "data.task"));
    m->V = (int)cfg_int(c, "model.vocab_size");
    m->L = (int)cfg_int(c, "data.seq_len");
    m->mq = cfg_bool(c, "data.mad.multi_query");
    m->train_all = !strcmp(cfg_str(c, "data.mad.train_labels"), "all");
    m->frac = cfg_is_auto(c, "data.mad.frac_noise") ? (m->kind == MAD_NOISY ? 0.2 : 0) : cfg_num(c, "data.mad.frac_noise");
    m->noise_vocab = cfg_is_auto(c, "data.mad.noise_vocab_size") ? (m->kind == MAD_NOISY ? 16 : 0) : (int)cfg_int(c, "data.mad.noise_vocab_size");
    m->kmax = (int)cfg_int(c, "data.mad.k_motif_size");
    m->vmax = (int)cfg_int(c, "data.mad.v_motif_size");
    m->ncopy = (int)cfg_int(c, "data.mad.num_tokens_to_copy");
    m->seed = (uint64_t)cfg_int(c, "data.seed");
    m->count[SPLIT_TRAIN] = cfg_is_auto(c, "data.mad.train_examples") ? (m->kind == MAD_MEMO ? 256 : 12800) : cfg_int(c, "data.mad.train_examples");
    m->count[SPLIT_VALID] = cfg_int(c, "data.mad.valid_examples");
    m->count[SPLIT_TEST] = cfg_int(c, "data.mad.test_examples");

    if (m->frac > 0 && m->noise_vocab < 1)
        return cfg_error(c, "data.mad.noise_vocab_size", err, "frac_noise %g needs noise tokens: noise_vocab_size >= 1", m->frac);
    if (m->kind == MAD_SELCOPY && m->frac > 0)
        return cfg_error(c, "data.mad.frac_noise", err, "selective copying has no noise option in MAD (its noise is the blank token); set 0");
    int L = m->L, V = m->V, N = m->noise_vocab;
    switch (m->kind) {
    case MAD_RECALL: case MAD_NOISY: {
        if (L % 2 || L < 4) return cfg_error(c, "data.seq_len", err, "in-context recall needs an even length >= 4, got %d", L);
        int ns = V - (m->mq ? 0 : 1) - N;   // keys and values
        if (ns < 2)
            return cfg_error(c, "model.vocab_size", err, "needs vocab_size >= %d (%s%d noise tokens, one key and one value), got %d",
                             2 + N + !m->mq, m->mq ? "" : "copy prefix, ", N, V);
        break;
    }
    case MAD_FUZZY: {
        int ns = V - (m->mq ? 1 : 2) - N;   // pad (and copy prefix) are special
        if (ns / 2 < m->kmax || ns - ns / 2 < m->vmax)
            return cfg_error(c, "model.vocab_size", err,
                             "fuzzy recall draws keys of %d and values of %d distinct tokens from halves of %d tokens: needs vocab_size >= %d, got %d",
                             m->kmax, m->vmax, ns, 2 * (m->kmax > m->vmax ? m->kmax : m->vmax) + (m->mq ? 1 : 2) + N, V);
        if (L < 2 * (m->kmax + m->vmax) + 2)
            return cfg_error(c, "data.seq_len", err, "fuzzy recall with motifs of %d+%d tokens needs seq_len >= %d, got %d", m->kmax, m->vmax,
                             2 * (m->kmax + m->vmax) + 2, L);
        break;
    }
    case MAD_SELCOPY:
        if (V < 3) return cfg_error(c, "model.vocab_size", err, "selective copying needs vocab_size >= 3 (content, blank, copy), got %d", V);
        if (L <= 2 * m->ncopy + 1)
            return cfg_error(c, "data.mad.num_tokens_to_copy", err, "seq_len must be > 2*num_tokens_to_copy + 1 (MAD's assert): at most %d tokens for seq_len %d",
                             (L - 2) / 2, L);
        break;
    case MAD_COMPRESS:
        if (V - 1 - N < 1) return cfg_error(c, "model.vocab_size", err, "compression needs vocab_size >= %d (content, %d noise, compression token), got %d", N + 2, N, V);
        break;
    case MAD_MEMO:
        if (L % 2) return cfg_error(c, "data.seq_len", err, "memorization needs an even length (key, insert pairs), got %d", L);
        if (V - 1 - N < 2) return cfg_error(c, "model.vocab_size", err, "memorization needs vocab_size >= %d (a key, a value, %d noise, insert token), got %d", N + 3, N, V);
        break;
    }
    return 0;
}

static int mad_validate(const Config *c, ConfError *err) {
    Mad m;
    return mad_load(c, &m, err);
}

// Memorization's fixed map: MAD zips a shuffled list of keys [0, ns/2) with a shuffled list of
// values [ns/2, ns) (generate_kv_map), a uniformly random injection; so is this. Seeded by
// data.seed alone (MAD: its config seed), never by the split: train and test share it, which is
// the point of the task.
static int *memo_map(const Mad *m) {
    int ns = m->V - 1 - m->noise_vocab, nk = ns / 2, nv = ns - nk;
    int *vals = xmalloc(nv * sizeof(int));
    for (int i = 0; i < nv; i++) vals[i] = nk + i;
    Rng r;
    rng_seed(&r, task_example_seed(m->seed ^ 0x6d656d6f72697a65ull, SPLIT_TRAIN, -1));   // a stream of its own
    for (int i = nv - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint64_t)i + 1), t = vals[i];
        vals[i] = vals[j]; vals[j] = t;
    }
    return vals;   // key k -> vals[k] for k < nk
}

static void *mad_open(const Config *c, ConfError *err) {
    Mad *m = xmalloc(sizeof *m);
    if (mad_load(c, m, err)) { free(m); return NULL; }
    if (m->kind == MAD_MEMO) m->memo_map = memo_map(m);
    return m;
}

static long mad_size(void *st, int split) { return ((Mad *)st)->count[split]; }

static int mad_max_len(void *st) {
    Mad *m = st;
    switch (m->kind) {
    case MAD_RECALL: case MAD_NOISY: return m->mq ? m->L - 1 : m->L;
    case MAD_COMPRESS: return 2 * m->L - 2;
    default: return m->L;
    }
}

static int mad_max_labels(void *st) { return mad_max_len(st); }

// Writes n distinct tokens from [lo, lo + range) in random order: a uniform draw from MAD's
// permutations(vocab, n) without building the list.
static void draw_motif(Rng *r, int *out, int n, int lo, int range) {
    for (int i = 0; i < n; i++) {
        int v, dup;
        do {
            v = lo + (int)rng_below(r, (uint64_t)range);
            dup = 0;
            for (int j = 0; j < i; j++) if (out[j] == v) { dup = 1; break; }
        } while (dup);
        out[i] = v;
    }
}

// MAD's recall generators build s[0..n) and targets t[0..n) and return (s[:-1], t[1:]) for
// test and (s[:-1], s[1:]) for training. This writes that shift into x, y and returns n - 1.
// noise_lo..noise_hi: tokens that are never labelled (see the header).
static int shift_out(const Mad *m, int split, const int *s, const int *t, int n, int noise_lo, int noise_hi, int *x, int *y) {
    int all = split == SPLIT_TRAIN && m->train_all;
    for (int i = 0; i < n - 1; i++) {
        x[i] = s[i];
        int next = s[i + 1];
        y[i] = all ? (next >= noise_lo && next < noise_hi ? -1 : next) : t[i + 1];
    }
    return n - 1;
}

// In-context recall and noisy in-context recall (generate_in_context_recall_instance):
// keys [0, ns/2), values [ns/2, ns), noise [ns, ns + noise_vocab), ns = V - noise (V - 1 - noise
// without multi_query, whose copy prefix is V - 1). L/2 - 1 slots, each a noise pair or a key
// drawn with replacement and its value (drawn once per key per sequence); then a probe: a key
// already presented and its value. Under multi_query every repeated key's value is scored.
static int gen_recall(const Mad *m, Rng *r, int split, int *x, int *y) {
    int L = m->L, ns = m->V - (m->mq ? 0 : 1) - m->noise_vocab, nk = ns / 2, nv = ns - nk;
    int *s = xmalloc(2 * (L + 1) * sizeof(int)), *t = s + L + 1;
    int *vmap = xmalloc(2 * nk * sizeof(int)), *seen = vmap + nk;
    for (int k = 0; k < nk; k++) { vmap[k] = -1; seen[k] = 0; }
    int slots = L / 2 - 1, n = 0;
    // MAD draws this among L/2 slots, but its loop visits only L/2 - 1 of them: when the draw
    // hits the last one no slot is protected, an all-noise sequence leaves no key to probe and
    // rng.choice on the empty key list raises. Fixed: drawn among the visited slots.
    int keep = (int)rng_below(r, (uint64_t)slots);
    for (int i = 0; i < slots; i++) {
        if (m->frac > 0 && i != keep && rng_uniform(r) < m->frac) {
            for (int j = 0; j < 2; j++) { s[n] = ns + (int)rng_below(r, (uint64_t)m->noise_vocab); t[n++] = -1; }
            continue;
        }
        int k = (int)rng_below(r, (uint64_t)nk);
        if (vmap[k] < 0) vmap[k] = nk + (int)rng_below(r, (uint64_t)nv);
        s[n] = k; t[n++] = -1;
        s[n] = vmap[k]; t[n++] = seen[k] && m->mq ? vmap[k] : -1;
        seen[k] = 1;
    }
    int npres = 0, pick, kp = -1;
    for (int k = 0; k < nk; k++) npres += seen[k];
    pick = (int)rng_below(r, (uint64_t)npres);   // uniform over the distinct presented keys
    for (int k = 0; k < nk && kp < 0; k++) if (seen[k] && pick-- == 0) kp = k;
    if (!m->mq) { s[n] = m->V - 1; t[n++] = -1; }
    s[n] = kp; t[n++] = -1;
    s[n] = vmap[kp]; t[n++] = vmap[kp];
    int len = shift_out(m, split, s, t, n, ns, ns + m->noise_vocab, x, y);
    free(s); free(vmap);
    return len;
}

// Fuzzy in-context recall (generate_fuzzy_in_context_recall_instance): keys are 1..k_motif_size
// distinct key tokens, values 1..v_motif_size distinct value tokens (test: keys always
// k_motif_size long); a probe pair is inserted at a random point and repeated at the end; the
// sequence is left-padded to L + 1 with the pad token before the shift.
// keys [0, ns/2), values [ns/2, ns), noise above, pad V-1 (multi_query) or V-2 with copy
// prefix V-1.
typedef struct { int k[64], kl, v[64], vl; } Pair;

static int same_key(const Pair *p, const int *k, int kl) { return p->kl == kl && !memcmp(p->k, k, kl * sizeof(int)); }

static int gen_fuzzy(const Mad *m, Rng *r, int split, int *x, int *y) {
    int L = m->L, train = split == SPLIT_TRAIN, N = m->noise_vocab;
    int ns = m->V - (m->mq ? 1 : 2) - N, nk = ns / 2, nv = ns - nk, pad = m->mq ? m->V - 1 : m->V - 2;
    int *s = xmalloc(2 * (L + 1) * sizeof(int)), *t = s + L + 1;
    Pair *tab = xmalloc((L / 2 + 1) * sizeof(Pair));   // every key presented, with its value
    int ntab = 0, n = 0;
    Pair probe;
    probe.kl = train ? 1 + (int)rng_below(r, (uint64_t)m->kmax) : m->kmax;
    probe.vl = 1 + (int)rng_below(r, (uint64_t)m->vmax);
    draw_motif(r, probe.k, probe.kl, 0, nk);
    draw_motif(r, probe.v, probe.vl, nk, nv);
    int kvp = probe.kl + probe.vl;
    int probe_idx = (int)rng_below(r, (uint64_t)(L - 2 * kvp));
    int bound = L - kvp - (m->kmax + m->vmax), probe_added = 0;
    while (n < bound) {
        int ks = train ? 1 + (int)rng_below(r, (uint64_t)m->kmax) : m->kmax;
        int vs = 1 + (int)rng_below(r, (uint64_t)m->vmax);
        // MAD inserts the probe at the first pair boundary at or after probe_idx, but the loop
        // can end before reaching it (probe_idx can lie in or beyond the last pair's span: it
        // ranges up to L - 2*kvp, the loop stops at L - kvp - kmax - vmax), and then the final
        // probe asks for a key never shown (2% of sequences at the baseline V 16, L 128; measured).
        // Fixed: also insert it when the next pair, at its largest, could end the loop.
        if (!probe_added && (n >= probe_idx || n + m->kmax + m->vmax >= bound)) {
            for (int j = 0; j < kvp; j++) { s[n + j] = j < probe.kl ? probe.k[j] : probe.v[j - probe.kl]; t[n + j] = -1; }
            n += kvp;
            tab[ntab++] = probe;
            probe_added = 1;
            continue;
        }
        if (m->frac > 0 && rng_uniform(r) < m->frac) {
            for (int j = 0; j < ks + vs; j++) { s[n] = ns + (int)rng_below(r, (uint64_t)N); t[n++] = -1; }
            continue;
        }
        int k[64];
        draw_motif(r, k, ks, 0, nk);
        const Pair *p = NULL;
        for (int i = 0; i < ntab && !p; i++) if (same_key(&tab[i], k, ks)) p = &tab[i];
        int presented = p != NULL;
        if (!p) {   // a new key: the probe's value if it is the probe key, else a fresh value
            Pair *e = &tab[ntab++];
            if (same_key(&probe, k, ks)) { *e = probe; probe_added = 1; }
            else { e->kl = ks; memcpy(e->k, k, ks * sizeof(int)); e->vl = vs; draw_motif(r, e->v, vs, nk, nv); }
            p = e;
        }
        for (int j = 0; j < ks; j++) { s[n] = k[j]; t[n++] = -1; }
        for (int j = 0; j < p->vl; j++) { s[n] = p->v[j]; t[n++] = presented && m->mq ? p->v[j] : -1; }
    }
    if (!m->mq) { s[n] = m->V - 1; t[n++] = -1; }
    for (int j = 0; j < probe.kl; j++) { s[n] = probe.k[j]; t[n++] = -1; }
    for (int j = 0; j < probe.vl; j++) { s[n] = probe.v[j]; t[n++] = probe.v[j]; }
    // left padding to L + 1 (n <= L + 1: the loop stops below bound + kmax + vmax)
    int npad = L + 1 - n;
    memmove(s + npad, s, n * sizeof(int));
    memmove(t + npad, t, n * sizeof(int));
    for (int j = 0; j < npad; j++) { s[j] = pad; t[j] = -1; }
    int len = shift_out(m, split, s, t, L + 1, ns, ns + N, x, y);
    free(s); free(tab);
    return len;
}

// Selective copying (generate_copying_instance, selective=True): n content tokens from
// [0, V-2) with replacement, L-2n-1 blanks (V-2) inserted among them, the copy token V-1, then n
// blanks whose targets are the content tokens in order. MAD's targets are aligned with the
// inputs (no shift), which is already our convention: the first blank after the copy token
// predicts the first content token.
static int gen_selcopy(const Mad *m, Rng *r, int *x, int *y) {
    int L = m->L, n = m->ncopy, blanks = L - 2 * n - 1, blank = m->V - 2;
    int *c = xmalloc((2 * n + 1) * sizeof(int)), *gap = c + n;
    for (int i = 0; i < n; i++) c[i] = (int)rng_below(r, (uint64_t)(m->V - 2));
    // MAD draws the insert points with the global np.random (not the config's rng, so data are
    // not reproducible from the seed; fixed: the example's own stream) and from
    // randint(0, n), whose high end is exclusive, so no blank ever follows the last content
    // token and it always sits right before the copy token. Fixed: each blank picks one of the
    // n + 1 gaps, MAD's distribution otherwise.
    memset(gap, 0, (n + 1) * sizeof(int));
    for (int b = 0; b < blanks; b++) gap[rng_below(r, (uint64_t)n + 1)]++;
    int pos = 0;
    for (int i = 0; i <= n; i++) {
        for (int b = 0; b < gap[i]; b++) { x[pos] = blank; y[pos++] = -1; }
        if (i < n) { x[pos] = c[i]; y[pos++] = -1; }
    }
    x[pos] = m->V - 1; y[pos++] = -1;
    for (int i = 0; i < n; i++) { x[pos] = blank; y[pos++] = c[i]; }
    free(c);
    return pos;   // = L
}

// Compression (generate_compression_instance): L-1 tokens from [0, V-1-noise), then the
// compression token V-1; MAD trains an AutoEncoder on it: a causal encoder stack whose last
// position is pooled into one vector, plus sin-cos positions, through a 2-layer MLP decoder that
// reconstructs all L tokens. That cannot be said with next-token labels on one causal stack.
// The causal variant here: the L-1 tokens, the compression token, then L-2 more compression
// tokens acting as decoder queries; the compression token and each query are labelled with the
// input tokens in order, so a position's count of compression tokens plays MAD's decoder
// position embedding. Differences: (1) no bottleneck: every layer, attention especially, can
// read the input directly while decoding, so this measures in-context reproduction through the
// whole stack rather than compression into one vector; (2) the example is 2L-2 tokens long;
// (3) MAD also scores reconstructing the compression token itself (always right), we do not.
// With frac_noise, inputs are replaced by noise tokens [V-1-noise, V-1) that are not targets:
// MAD computes that mask but returns (inputs, inputs), so its noise would become targets
// (fixed; unreachable in the benchmark, which uses no noise).
static int gen_compression(const Mad *m, Rng *r, int *x, int *y) {
    int L = m->L, ns = m->V - 1 - m->noise_vocab, comp = m->V - 1;
    for (int i = 0; i < L - 1; i++) {
        int v = (int)rng_below(r, (uint64_t)ns);
        x[i] = v; y[i] = -1;
        y[L - 1 + i] = v;   // the decoder position that reproduces token i
    }
    for (int i = 0; i < L - 1; i++)
        if (m->frac > 0 && rng_uniform(r) < m->frac) {
            x[i] = ns + (int)rng_below(r, (uint64_t)m->noise_vocab);
            y[L - 1 + i] = -1;
        }
    for (int i = L - 1; i < 2 * L - 2; i++) x[i] = comp;
    return 2 * L - 2;
}

// Memorization (generate_memorization_instance): L/2 slots, each a key drawn with replacement
// and the insert token V-1, labelled with the key's value in the fixed map; or (frac_noise) two
// noise tokens, with one slot always a key. Aligned targets as in MAD.
static int gen_memo(const Mad *m, Rng *r, int *x, int *y) {
    int ns = m->V - 1 - m->noise_vocab, nk = ns / 2, slots = m->L / 2;
    int keep = (int)rng_below(r, (uint64_t)slots);
    for (int i = 0; i < slots; i++) {
        if (m->frac > 0 && i != keep && rng_uniform(r) < m->frac) {
            for (int j = 0; j < 2; j++) { x[2 * i + j] = ns + (int)rng_below(r, (uint64_t)m->noise_vocab); y[2 * i + j] = -1; }
            continue;
        }
        int k = (int)rng_below(r, (uint64_t)nk);
        x[2 * i] = k; y[2 * i] = -1;
        x[2 * i + 1] = m->V - 1; y[2 * i + 1] = m->memo_map[k];
    }
    return m->L;
}

static int mad_example(void *st, int split, long index, int *x, int *y, Slice *slice) {
    Mad *m = st;
    Rng r;
    // MAD draws every example from one np.random.default_rng(seed) shared by train and test,
    // and its parallel generators (num_data_workers > 1) ship copies of that generator to the
    // workers, which then produce identical examples. Here each example has its own seed.
    rng_seed(&r, task_example_seed(m->seed, split, index));
    int len = 0;
    switch (m->kind) {
    case MAD_RECALL: case MAD_NOISY: len = gen_recall(m, &r, split, x, y); break;
    case MAD_FUZZY: len = gen_fuzzy(m, &r, split, x, y); break;
    case MAD_SELCOPY: len = gen_selcopy(m, &r, x, y); break;
    case MAD_COMPRESS: len = gen_compression(m, &r, x, y); break;
    case MAD_MEMO: len = gen_memo(m, &r, x, y); break;
    }
    // MAD's settings axes (its log directory names): vocab_size, seq_len, and the task's own
    slice_add(slice, "seq_len", m->L);
    slice_add(slice, "vocab_size", m->V);
    if (m->kind == MAD_NOISY) slice_add(slice, "noise_pct", (long)(m->frac * 100 + 0.5));
    if (m->kind == MAD_SELCOPY) slice_add(slice, "num_tokens_to_copy", m->ncopy);
    return len;
}

static void mad_close(void *st) {
    Mad *m = st;
    free(m->memo_map);
    free(m);
}

// The six share one key table (the registry lists a shared table once).
#define MAD_TASK(var, nm) \
    const Task var = {.name = nm, .metric = "accuracy", .keys = mad_keys, .validate = mad_validate, .open = mad_open, \
                      .size = mad_size, .max_len = mad_max_len, .max_labels = mad_max_labels, .example = mad_example, .close = mad_close}
MAD_TASK(mad_recall_task, "mad_recall");
MAD_TASK(mad_noisy_recall_task, "mad_noisy_recall");
MAD_TASK(mad_fuzzy_recall_task, "mad_fuzzy_recall");
MAD_TASK(mad_selective_copy_task, "mad_selective_copy");
MAD_TASK(mad_compression_task, "mad_compression");
MAD_TASK(mad_memorization_task, "mad_memorization");
