// report_doc.h: writes one document twice, as GitHub Markdown (report.md) and as a single
// self-contained HTML file (report.html: styles inline, plots embedded as data: URIs), so the two
// never disagree. Text passed in may use `code` and **bold**, the only inline markup; everything
// else is escaped for HTML (and '|' inside table cells for Markdown).
//
// The files are written into a fresh directory that replaces the output directory only when the
// report is complete (doc_commit): a failed or interrupted report leaves the previous one intact.
#pragma once
#include <stdio.h>

typedef struct {
    char out[4096];      // the final directory, e.g. reports/jamba-ratio
    char dir[4200];      // where the files are written until doc_commit: OUT.tmp-PID
    FILE *md, *html;
    int in_list;         // the last element was a bullet (the next non-bullet closes the list)
} Doc;

// Creates the staging directory (and its plots/ subdirectory) and opens both files with the
// title. Returns 0; -2 with a message in err when `out` exists and is neither an earlier report
// nor an empty directory (it would be replaced); -1 when the files cannot be created.
int doc_open(Doc *d, const char *out, const char *title, char *err, size_t cap);
void doc_heading(Doc *d, int level, const char *text);
void doc_para(Doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void doc_bullet(Doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void doc_code(Doc *d, const char *text);   // a preformatted block
// A table of nrows x ncols cells (row-major); bold[r*ncols+c] non-zero puts the cell in bold
// (NULL: none); align is one char per column, 'l' or 'r'.
void doc_table(Doc *d, int ncols, const char *const *head, int nrows, char *const *cells, const unsigned char *bold,
               const char *align);
// The plot plots/STEM.svg with a caption; when the SVG is missing (no gnuplot) a note says so.
void doc_image(Doc *d, const char *stem, const char *caption);
// Closes the files and moves the staging directory into place (an older report there is
// removed). Returns 0, or -1 with err (the staging directory is then removed too).
int doc_commit(Doc *d, char *err, size_t cap);
// Closes the files and removes the staging directory.
void doc_abort(Doc *d);
// Recursively removes a directory tree; returns 0 or -1.
int remove_tree(const char *path);
