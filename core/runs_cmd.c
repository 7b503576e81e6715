// runs_cmd.c: reading the run store: `hlab runs` (list and filter), `hlab export` (CSV) and
// `hlab merge` (join stores written on different machines).
//
// Filters, shared by runs and export: --experiment NAME, --variant NAME, --status S and any
// number of --where KEY<op>VALUE on the resolved config (op one of = != < <= > >=; numbers are
// compared as numbers, because params keeps them as numbers). All values are bound parameters.
#include "runs_cmd.h"
#include "common.h"
#include "store.h"
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BIND 80

typedef struct {
    char sql[8192];
    const char *text[MAX_BIND];
    char key[MAX_BIND][256];    // --where keys, cut out of their "KEY<op>VALUE" argument
    double num[MAX_BIND];
    int is_num[MAX_BIND], n;
} Query;

static void bind_str(Query *q, const char *s) { q->text[q->n] = s; q->is_num[q->n++] = 0; }

// Appends " AND ..." conditions on runs r (joined to experiments e) for the filters.
static int add_filters(Query *q, const RunsOptions *o, char *err, size_t cap) {
    if (o->experiment) { strcat(q->sql, " AND e.name = ?"); bind_str(q, o->experiment); }
    if (o->variant) { strcat(q->sql, " AND r.variant = ?"); bind_str(q, o->variant); }
    if (o->status) { strcat(q->sql, " AND r.status = ?"); bind_str(q, o->status); }
    static const char *const ops[] = {"<=", ">=", "!=", "=", "<", ">", NULL};
    for (int i = 0; i < o->nwhere; i++) {
        const char *w = o->where[i], *at = NULL, *op = NULL;
        for (const char *p = w; *p && !at; p++)
            for (int k = 0; ops[k]; k++)
                if (!strncmp(p, ops[k], strlen(ops[k]))) { at = p; op = ops[k]; break; }
        if (q->n + 2 > MAX_BIND) {
            snprintf(err, cap, "--where \"%s\": too many filters (at most %d --where)", w, (MAX_BIND - 3) / 2);
            return -1;
        }
        if (!at || at == w) {
            snprintf(err, cap, "--where \"%s\": expected KEY<op>VALUE with op one of = != < <= > >=, e.g. model.d_model>=128", w);
            return -1;
        }
        char *key = q->key[q->n];
        snprintf(key, sizeof q->key[0], "%.*s", (int)(at - w), w);
        const char *val = at + strlen(op);
        char *end;
        double x = strtod(val, &end);
        int numeric = *val && !*end;
        if (!numeric && strcmp(op, "=") && strcmp(op, "!=")) {
            snprintf(err, cap, "--where \"%s\": %s compares numbers; \"%s\" is not a number", w, op, val);
            return -1;
        }
        char cond[256];
        snprintf(cond, sizeof cond, " AND EXISTS (SELECT 1 FROM params p WHERE p.run_id = r.id AND p.key = ? AND p.%s %s ?)",
                 numeric ? "value_num" : "value_text", op);
        strcat(q->sql, cond);
        bind_str(q, key);
        if (numeric) { q->num[q->n] = x; q->is_num[q->n++] = 1; }
        else bind_str(q, val);
    }
    return 0;
}

static sqlite3_stmt *prepare_query(Store *s, Query *q, char *err, size_t cap) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(store_sqlite(s), q->sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, cap, "%s", sqlite3_errmsg(store_sqlite(s)));
        return NULL;
    }
    for (int i = 0; i < q->n; i++)
        if (q->is_num[i]) sqlite3_bind_double(st, i + 1, q->num[i]);
        else sqlite3_bind_text(st, i + 1, q->text[i], -1, SQLITE_STATIC);
    return st;
}

// RFC 4180: quote a field with a comma, quote or line break; double the quotes inside.
static void csv_field(FILE *f, const char *s, int first) {
    if (!first) fputc(',', f);
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) { if (*s == '"') fputc('"', f); fputc(*s, f); }
    fputc('"', f);
}

// The run summary every listing shares: one row per run.
static const char *summary_sql =
    "SELECT r.id, coalesce(e.name, ''), coalesce(r.variant, ''), r.status, r.seed, r.pattern, r.params_total, r.params_active,"
    " (SELECT group_concat(v.task || ':' || v.metric || '=' || printf('%.4f', v.value), ' ') FROM evals v"
    "   WHERE v.run_id = r.id AND v.split = 'test' AND v.slice = '{}' AND v.source = 'train' AND (v.metric = 'bpb' OR"
    "   (v.metric = 'accuracy' AND NOT EXISTS (SELECT 1 FROM evals w WHERE w.run_id = r.id AND w.task = v.task AND w.metric = 'bpb')))),"
    " (SELECT max(value) FROM evals t WHERE t.run_id = r.id AND t.metric = 'train_seconds'),"
    " r.started_at, r.ended_at, r.code_version, r.host, r.threads, r.ranks, r.identity, coalesce(r.error, '')"
    " FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id WHERE 1";

static Store *open_existing(const char *db, char *err, size_t cap) {
    if (access(db, F_OK) != 0) { snprintf(err, cap, "no run store at %s", db); return NULL; }
    return store_open(db, err, cap);
}

int runs_main(const RunsOptions *o) {
    char err[1024];
    const char *db = o->db ? o->db : store_default_path();
    Store *s = open_existing(db, err, sizeof err);
    if (!s) { fprintf(stderr, "hlab: runs: %s\n", err); return EXIT_BADINPUT; }
    Query q = {.n = 0};
    snprintf(q.sql, sizeof q.sql, "%s", summary_sql);
    if (add_filters(&q, o, err, sizeof err)) { fprintf(stderr, "hlab: %s\n", err); store_close(s); return EXIT_BADINPUT; }
    strcat(q.sql, " ORDER BY r.id");
    sqlite3_stmt *st = prepare_query(s, &q, err, sizeof err);
    if (!st) { fprintf(stderr, "hlab: runs: %s\n", err); store_close(s); return EXIT_FAIL; }
    printf("%5s  %-24s %-16s %-11s %5s  %-16s %10s  %-32s %8s\n", "id", "experiment", "variant", "status", "seed", "pattern",
           "params", "test", "train s");
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *test = (const char *)sqlite3_column_text(st, 8);
        char secs[32] = "-";
        if (sqlite3_column_type(st, 9) != SQLITE_NULL) snprintf(secs, sizeof secs, "%.1f", sqlite3_column_double(st, 9));
        printf("%5lld  %-24.24s %-16.16s %-11s %5lld  %-16.16s %10.0f  %-32.32s %8s\n", (long long)sqlite3_column_int64(st, 0),
               (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
               (const char *)sqlite3_column_text(st, 3), (long long)sqlite3_column_int64(st, 4),
               (const char *)sqlite3_column_text(st, 5), sqlite3_column_double(st, 6), test ? test : "-", secs);
        n++;
    }
    sqlite3_finalize(st);
    printf("%d runs\n", n);
    store_close(s);
    return EXIT_OK;
}

int export_main(const RunsOptions *o, const char *what, const char *out) {
    char err[1024];
    const char *db = o->db ? o->db : store_default_path();
    const char *header;
    Query q = {.n = 0};
    if (!strcmp(what, "runs")) {
        header = "id,experiment,variant,status,seed,pattern,params_total,params_active,test,train_seconds,started_at,ended_at,"
                 "code_version,host,threads,ranks,identity,error";
        snprintf(q.sql, sizeof q.sql, "%s", summary_sql);
    } else if (!strcmp(what, "metrics")) {
        header = "run_id,experiment,variant,step,tokens,wall,name,value";
        snprintf(q.sql, sizeof q.sql, "SELECT r.id, coalesce(e.name, ''), coalesce(r.variant, ''), m.step, m.tokens, m.wall, m.name, m.value"
                 " FROM metrics m JOIN runs r ON r.id = m.run_id LEFT JOIN experiments e ON e.id = r.experiment_id WHERE 1");
    } else if (!strcmp(what, "evals")) {
        header = "run_id,experiment,variant,task,split,slice,metric,value,count,source";
        snprintf(q.sql, sizeof q.sql, "SELECT r.id, coalesce(e.name, ''), coalesce(r.variant, ''), v.task, v.split, v.slice, v.metric,"
                 " v.value, v.count, v.source FROM evals v JOIN runs r ON r.id = v.run_id LEFT JOIN experiments e ON e.id = r.experiment_id WHERE 1");
    } else {
        fprintf(stderr, "hlab: export: what to export: runs, metrics or evals, not \"%s\"\n", what);
        return EXIT_BADINPUT;
    }
    Store *s = open_existing(db, err, sizeof err);
    if (!s) { fprintf(stderr, "hlab: export: %s\n", err); return EXIT_BADINPUT; }
    if (add_filters(&q, o, err, sizeof err)) { fprintf(stderr, "hlab: %s\n", err); store_close(s); return EXIT_BADINPUT; }
    strcat(q.sql, !strcmp(what, "metrics") ? " ORDER BY r.id, m.name, m.step" : !strcmp(what, "evals") ? " ORDER BY r.id, v.rowid" : " ORDER BY r.id");
    sqlite3_stmt *st = prepare_query(s, &q, err, sizeof err);
    if (!st) { fprintf(stderr, "hlab: export: %s\n", err); store_close(s); return EXIT_FAIL; }
    // a file is written beside its final name and renamed when complete: never a partial CSV
    OutFile of = {0};
    FILE *f = stdout;
    if (out) {
        if (outfile_open(&of, out, err, sizeof err) != 0) {
            fprintf(stderr, "hlab: export: %s\n", err);
            sqlite3_finalize(st); store_close(s);
            return EXIT_BADINPUT;
        }
        f = of.f;
    }
    fprintf(f, "%s\n", header);
    int ncol = sqlite3_column_count(st);
    long rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < ncol; c++) {
            char num[64];
            const char *v = NULL;
            if (sqlite3_column_type(st, c) == SQLITE_FLOAT) { snprintf(num, sizeof num, "%.9g", sqlite3_column_double(st, c)); v = num; }
            else if (sqlite3_column_type(st, c) != SQLITE_NULL) v = (const char *)sqlite3_column_text(st, c);
            csv_field(f, v, c == 0);
        }
        fputc('\n', f);
        rows++;
    }
    sqlite3_finalize(st);
    store_close(s);
    if (out) {
        if (outfile_commit(&of, err, sizeof err) != 0) {
            fprintf(stderr, "hlab: export: %s\n", err);
            return EXIT_FAIL;
        }
        fprintf(stderr, "%ld rows written to %s\n", rows, out);
    }
    return EXIT_OK;
}

int merge_main(const char *const *inputs, int n, const char *out) {
    char err[1024];
    for (int i = 0; i < n; i++)
        if (access(inputs[i], R_OK) != 0) { fprintf(stderr, "hlab: merge: cannot read %s\n", inputs[i]); return EXIT_BADINPUT; }
    Store *s = store_open(out, err, sizeof err);
    if (!s) { fprintf(stderr, "hlab: merge: %s\n", err); return EXIT_BADINPUT; }
    int rc = EXIT_OK;
    for (int i = 0; i < n && rc == EXIT_OK; i++) {
        long copied, skipped;
        if (store_merge(s, inputs[i], &copied, &skipped) != 0) {
            fprintf(stderr, "hlab: merge: %s\n", store_errmsg(s));
            rc = EXIT_BADINPUT;
        } else printf("%s: %ld runs copied, %ld already in %s\n", inputs[i], copied, skipped, out);
    }
    store_close(s);
    return rc;
}
