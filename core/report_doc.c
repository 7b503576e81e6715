// report_doc.c: the Markdown + HTML document writer of `hlab report` (see report_doc.h).
#include "report_doc.h"
#include "common.h"
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *css =
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
    "color:#1f2328;line-height:1.5}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #d0d7de;padding:4px 10px}"
    "th{background:#f6f8fa}td.r{text-align:right;font-variant-numeric:tabular-nums}"
    "code{background:#f6f8fa;padding:1px 4px;border-radius:4px;font-size:90%}"
    "pre{background:#f6f8fa;padding:10px;overflow-x:auto}figure{margin:1em 0}img{max-width:100%}"
    "figcaption{color:#59636e;font-size:14px}";

// HTML-escapes s, turning `code` and **bold** into tags.
static void html_inline(FILE *f, const char *s) {
    int code = 0, bold = 0;
    for (; *s; s++) {
        if (*s == '`') { fputs(code ? "</code>" : "<code>", f); code = !code; continue; }
        if (!code && s[0] == '*' && s[1] == '*') { fputs(bold ? "</b>" : "<b>", f); bold = !bold; s++; continue; }
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
    if (code) fputs("</code>", f);
    if (bold) fputs("</b>", f);
}

// Markdown text: a '<' outside `code` is backslash-escaped, so text from a config or an
// experiment file (a name, a description, a claim) cannot become raw HTML in a Markdown viewer
// that renders it (CommonMark shows \< as <). In table cells (cell = 1) a '|' would end the
// cell and a newline the row.
static void md_text(FILE *f, const char *s, int cell) {
    int code = 0;
    for (; *s; s++) {
        if (*s == '`') code = !code;
        if (cell && *s == '|') fputs("\\|", f);
        else if (cell && *s == '\n') fputc(' ', f);
        else if (*s == '<' && !code) fputs("\\<", f);
        else fputc(*s, f);
    }
}
static void md_cell(FILE *f, const char *s) { md_text(f, s, 1); }

// An existing --out may only be replaced when it is an earlier report (or empty): anything else
// (a home directory, a device such as /dev/null) would be moved aside and removed by
// doc_commit. Returns 0 if out may be used.
static int check_out(const char *out, char *err, size_t cap) {
    struct stat st;
    if (stat(out, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, cap, "%s exists and is not a directory; give a new directory (or an earlier report) as --out", out);
        return -1;
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/report.md", out);
    if (access(path, F_OK) == 0) return 0;
    DIR *d = opendir(out);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));) entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    if (d && entries == 0) return 0;
    snprintf(err, cap, "%s exists and is not an hlab report (no report.md in it); refusing to replace it: give another --out", out);
    return -1;
}

int doc_open(Doc *d, const char *out, const char *title, char *err, size_t cap) {
    memset(d, 0, sizeof *d);
    if (check_out(out, err, cap) != 0) return -2;
    snprintf(d->out, sizeof d->out, "%s", out);
    snprintf(d->dir, sizeof d->dir, "%s.tmp-%d", out, (int)getpid());
    remove_tree(d->dir);   // a leftover of a killed report with a recycled pid
    char plots[4300], path[4300];
    snprintf(plots, sizeof plots, "%s/plots", d->dir);
    int e = mkdir_p(plots);   // the staging directory with its parents (reports/ ...)
    if (e) {
        snprintf(err, cap, "cannot create %s: %s", plots, strerror(e));
        return -1;
    }
    snprintf(path, sizeof path, "%s/report.md", d->dir);
    d->md = fopen(path, "w");
    snprintf(path, sizeof path, "%s/report.html", d->dir);
    d->html = fopen(path, "w");
    if (!d->md || !d->html) {
        snprintf(err, cap, "cannot write in %s: %s", d->dir, strerror(errno));
        doc_abort(d);
        return -1;
    }
    fputs("# ", d->md);
    md_text(d->md, title, 0);
    fputs("\n\n", d->md);
    fprintf(d->html, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>");
    html_inline(d->html, title);
    fprintf(d->html, "</title>\n<style>%s</style></head>\n<body>\n<h1>", css);
    html_inline(d->html, title);
    fprintf(d->html, "</h1>\n");
    return 0;
}

// Ends a run of bullets: a blank line in Markdown (else the next line continues the last item)
// and </ul> in HTML.
static void end_list(Doc *d) {
    if (!d->in_list) return;
    fputc('\n', d->md);
    fputs("</ul>\n", d->html);
    d->in_list = 0;
}

void doc_heading(Doc *d, int level, const char *text) {
    end_list(d);
    fprintf(d->md, "%.*s ", level, "######");
    md_text(d->md, text, 0);
    fputs("\n\n", d->md);
    fprintf(d->html, "<h%d>", level);
    html_inline(d->html, text);
    fprintf(d->html, "</h%d>\n", level);
}

static void para(Doc *d, int bullet, const char *fmt, va_list ap) {
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) die("out of memory");
    if (!bullet) end_list(d);
    else if (!d->in_list) { fputs("<ul>\n", d->html); d->in_list = 1; }
    if (bullet) fputs("- ", d->md);
    md_text(d->md, s, 0);
    fputs(bullet ? "\n" : "\n\n", d->md);
    fputs(bullet ? "<li>" : "<p>", d->html);
    html_inline(d->html, s);
    fputs(bullet ? "</li>\n" : "</p>\n", d->html);
    free(s);
}
void doc_para(Doc *d, const char *fmt, ...) { va_list ap; va_start(ap, fmt); para(d, 0, fmt, ap); va_end(ap); }
void doc_bullet(Doc *d, const char *fmt, ...) { va_list ap; va_start(ap, fmt); para(d, 1, fmt, ap); va_end(ap); }

void doc_code(Doc *d, const char *text) {
    end_list(d);
    fprintf(d->md, "```\n%s%s```\n\n", text, text[0] && text[strlen(text) - 1] == '\n' ? "" : "\n");
    fputs("<pre>", d->html);
    for (const char *s = text; *s; s++) {
        if (*s == '<') fputs("&lt;", d->html);
        else if (*s == '>') fputs("&gt;", d->html);
        else if (*s == '&') fputs("&amp;", d->html);
        else fputc(*s, d->html);
    }
    fputs("</pre>\n", d->html);
}

void doc_table(Doc *d, int ncols, const char *const *head, int nrows, char *const *cells, const unsigned char *bold,
               const char *align) {
    if (nrows == 0) return;
    end_list(d);
    fputs("|", d->md);
    for (int c = 0; c < ncols; c++) { fputc(' ', d->md); md_cell(d->md, head[c]); fputs(" |", d->md); }
    fputs("\n|", d->md);
    for (int c = 0; c < ncols; c++) fputs(align[c] == 'r' ? "---:|" : "---|", d->md);
    fputc('\n', d->md);
    fputs("<table>\n<tr>", d->html);
    for (int c = 0; c < ncols; c++) { fputs("<th>", d->html); html_inline(d->html, head[c]); fputs("</th>", d->html); }
    fputs("</tr>\n", d->html);
    for (int r = 0; r < nrows; r++) {
        fputs("|", d->md);
        fputs("<tr>", d->html);
        for (int c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c] ? cells[r * ncols + c] : "";
            int b = bold && bold[r * ncols + c] && *s;
            fputc(' ', d->md);
            if (b) fputs("**", d->md);
            md_cell(d->md, s);
            if (b) fputs("**", d->md);
            fputs(" |", d->md);
            fprintf(d->html, "<td%s>%s", align[c] == 'r' ? " class=\"r\"" : "", b ? "<b>" : "");
            html_inline(d->html, s);
            fprintf(d->html, "%s</td>", b ? "</b>" : "");
        }
        fputc('\n', d->md);
        fputs("</tr>\n", d->html);
    }
    fputc('\n', d->md);
    fputs("</table>\n", d->html);
}

static void base64_file(FILE *out, FILE *in) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char b[3];
    size_t n;
    while ((n = fread(b, 1, 3, in)) > 0) {
        unsigned v = b[0] << 16 | (n > 1 ? b[1] << 8 : 0) | (n > 2 ? b[2] : 0);
        fputc(tab[v >> 18 & 63], out);
        fputc(tab[v >> 12 & 63], out);
        fputc(n > 1 ? tab[v >> 6 & 63] : '=', out);
        fputc(n > 2 ? tab[v & 63] : '=', out);
    }
}

void doc_image(Doc *d, const char *stem, const char *caption) {
    char path[4400];
    end_list(d);
    snprintf(path, sizeof path, "%s/plots/%s.svg", d->dir, stem);
    FILE *f = fopen(path, "rb");
    if (!f) {
        doc_para(d, "(plot `%s` not drawn: gnuplot was not available; its data and script are in `plots/%s.csv` and "
                    "`plots/%s.gp`)", stem, stem, stem);
        return;
    }
    fprintf(d->md, "![%s](plots/%s.svg)\n\n*%s* ([data](plots/%s.csv), [gnuplot script](plots/%s.gp), [PNG](plots/%s.png))\n\n",
            stem, stem, caption, stem, stem, stem);
    fputs("<figure><img alt=\"", d->html);
    html_inline(d->html, stem);
    fputs("\" src=\"data:image/svg+xml;base64,", d->html);
    base64_file(d->html, f);
    fclose(f);
    fputs("\"><figcaption>", d->html);
    html_inline(d->html, caption);
    fputs("</figcaption></figure>\n", d->html);
}

static void close_files(Doc *d) {
    if (d->md) fclose(d->md);
    if (d->html) fclose(d->html);
    d->md = d->html = NULL;
}

void doc_abort(Doc *d) {
    close_files(d);
    remove_tree(d->dir);
}

int doc_commit(Doc *d, char *err, size_t cap) {
    end_list(d);
    // marks the page once loaded: data-images="ok N" when every plot decoded, else "broken K"
    // (what the headless-browser test reads; a reader sees nothing)
    fputs("<script>addEventListener('load',function(){var b=0,n=document.images.length;for(var i=0;i<n;i++)"
          "if(!document.images[i].naturalWidth)b++;document.body.setAttribute('data-images',b?'broken '+b:'ok '+n);});"
          "</script>\n</body></html>\n", d->html);
    int bad = ferror(d->md) || ferror(d->html);
    bad |= fclose(d->md) != 0;
    bad |= fclose(d->html) != 0;
    d->md = d->html = NULL;
    if (bad) { snprintf(err, cap, "writing the report in %s failed (disk full?)", d->dir); remove_tree(d->dir); return -1; }
    // the old report moves aside, the new one into its place, then the old one goes
    char old[4300];
    snprintf(old, sizeof old, "%s.old-%d", d->out, (int)getpid());
    struct stat st;
    int had = stat(d->out, &st) == 0;
    if (had && rename(d->out, old) != 0) {
        snprintf(err, cap, "cannot replace %s: %s", d->out, strerror(errno));
        remove_tree(d->dir);
        return -1;
    }
    if (rename(d->dir, d->out) != 0) {
        snprintf(err, cap, "cannot move the report to %s: %s", d->out, strerror(errno));
        if (had) rename(old, d->out);
        remove_tree(d->dir);
        return -1;
    }
    if (had) remove_tree(old);
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(path);
}
int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
