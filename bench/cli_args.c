/* bench/cli_args.c: see cli_args.h. */
#include "cli_args.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "il_backend.h"
#include "il_cell.h"
#include "il_layer.h"
#include "il_options.h"
#include "il_solver.h"

static int find_spec(const il_cli *cli, const char *name, size_t len) {
  for (int i = 0; i < cli->nspec; i++)
    if (strlen(cli->spec[i].name) == len && strncmp(cli->spec[i].name, name, len) == 0) return i;
  return -1;
}

/* ---- did you mean ---- */

#define SUGGEST_LEN 64 /* longer words and candidates are never near */

/* Case-insensitive optimal string alignment distance (Damerau-Levenshtein without
 * repeated edits of a substring): insertions, deletions, substitutions and
 * transpositions of neighbours. a and b at most SUGGEST_LEN characters. */
static int osa_distance(const char *a, size_t la, const char *b, size_t lb) {
  int d[SUGGEST_LEN + 1][SUGGEST_LEN + 1];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      const int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
      int v = d[i - 1][j - 1] + (ai != bj);
      if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == bj &&
          d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return d[la][lb];
}

static int prefix_ci(const char *s, size_t ls, const char *p, size_t lp) {
  if (lp > ls) return 0;
  for (size_t i = 0; i < lp; i++)
    if (tolower((unsigned char)s[i]) != tolower((unsigned char)p[i])) return 0;
  return 1;
}

int il_cli_suggest(const char *word, const char *candidates, const char *prefix, char *buf, size_t cap) {
  enum { MAXC = 160, MAXS = 5 };
  struct { const char *s; size_t len, key; } c[MAXC]; /* key: length before any ':' */
  int nc = 0;
  if (cap) buf[0] = '\0';
  if (!word || !candidates || !cap) return 0;
  for (const char *p = candidates; *p && nc < MAXC;) {
    while (*p == ',' || *p == '|' || *p == ' ') p++;
    const size_t len = strcspn(p, ",| ");
    if (len) {
      const char *colon = memchr(p, ':', len);
      c[nc].s = p;
      c[nc].len = len;
      c[nc].key = colon ? (size_t)(colon - p) : len;
      nc++;
    }
    p += len;
  }
  const char *wcolon = strchr(word, ':');
  const size_t wk = wcolon ? (size_t)(wcolon - word) : strlen(word);
  if (wk == 0 || wk > SUGGEST_LEN) return 0;
  int dist[MAXC], best = 3;
  for (int i = 0; i < nc; i++) {
    dist[i] = 99;
    if (c[i].key > SUGGEST_LEN) continue;
    if (c[i].key == wk && strncmp(c[i].s, word, wk) == 0) continue; /* never the word itself */
    const int d = osa_distance(word, wk, c[i].s, c[i].key);
    const int limit = c[i].key >= 5 ? 2 : c[i].key >= 2 ? 1 : 0;
    if (d <= limit && (size_t)d < wk) dist[i] = d;
    if (dist[i] < best) best = dist[i];
  }
  int pick[MAXS], n = 0;
  for (int i = 0; i < nc && n < MAXS; i++)
    if (best <= 2 && dist[i] == best) pick[n++] = i;
  for (int i = 0; i < nc && n < MAXS && best > 2; i++)
    if ((wk >= 2 && prefix_ci(c[i].s, c[i].key, word, wk)) || (c[i].key >= 3 && prefix_ci(word, wk, c[i].s, c[i].key)))
      pick[n++] = i;
  size_t used = 0;
  for (int k = 0; k < n; k++) {
    const int i = pick[k];
    /* a word's ":ARG" goes onto a suggestion that has none ("phantm:3" -> "phantom:3") */
    const int keep_arg = wcolon && !memchr(c[i].s, ':', c[i].len);
    int w = snprintf(buf + used, cap - used, "%s'%s%.*s%s'", k == 0 ? "" : k == n - 1 ? " or " : ", ",
                     prefix ? prefix : "", (int)c[i].len, c[i].s, keep_arg ? wcolon : "");
    if (w < 0 || (size_t)w >= cap - used) break;
    used += (size_t)w;
  }
  return n;
}

int il_cli_hint(const char *msg, char *buf, size_t cap) {
  static const char *const markers[] = {"(valid: ", "(this build has: ", " is not one of "};
  if (cap) buf[0] = '\0';
  if (!msg || !cap || strstr(msg, "did you mean")) return 0;
  for (size_t m = 0; m < sizeof markers / sizeof markers[0]; m++) {
    const char *at = strstr(msg, markers[m]);
    if (!at) continue;
    /* the quoted value just before the marker */
    const char *close = at;
    while (close > msg && close[-1] != '\'') close--;
    if (close == msg) continue;
    close--; /* at the closing quote */
    const char *open = close;
    while (open > msg && open[-1] != '\'') open--;
    if (open == msg || (size_t)(close - open) >= 128) continue;
    char word[128], list[1024];
    snprintf(word, sizeof word, "%.*s", (int)(close - open), open);
    const char *l = at + strlen(markers[m]);
    snprintf(list, sizeof list, "%.*s", (int)strcspn(l, ")"), l);
    char sug[512];
    if (il_cli_suggest(word, list, "", sug, sizeof sug) == 0) return 0;
    snprintf(buf, cap, "did you mean %s?", sug);
    return 1;
  }
  return 0;
}

/* ---- output paths ---- */

il_status il_cli_check_out_path(const char *path, const char *what) {
  struct stat st;
  if (!path || !path[0]) return IL_ERR(IL_ERR_ARG, "%s: empty file name", what);
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return IL_ERR(IL_ERR_ARG, "%s '%s' is a directory; give a file name (e.g. %s%sresults.h5)", what, path, path,
                  path[strlen(path) - 1] == '/' ? "" : "/");
  const char *slash = strrchr(path, '/');
  if (!slash) return IL_OK; /* the working directory */
  char dir[4096];
  if (slash == path) snprintf(dir, sizeof dir, "/");
  else if ((size_t)(slash - path) >= sizeof dir) return IL_ERR(IL_ERR_ARG, "%s: path too long", what);
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
  if (stat(dir, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return IL_ERR(IL_ERR_ARG, "directory '%s%s' of %s does not exist (for '%s'; create it first: mkdir -p %s)",
                    dir, sep, what, path, dir);
    return IL_ERR(IL_ERR_ARG, "directory '%s%s' of %s: %s", dir, sep, what, strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return IL_ERR(IL_ERR_ARG, "'%s' of %s is not a directory", dir, what);
  if (access(dir, W_OK | X_OK) != 0)
    return IL_ERR(IL_ERR_ARG, "directory '%s%s' of %s is not writable: %s", dir, sep, what, strerror(errno));
  return IL_OK;
}

/* ---- input files ---- */

static const char *file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a regular file";
}

il_status il_cli_open_input(const char *path, const char *name, FILE **f) {
  *f = NULL;
  if (!path || !path[0]) return IL_ERR(IL_ERR_ARG, "%s: empty file name", name);
  struct stat st;
  if (stat(path, &st) != 0) return IL_ERR(IL_ERR_IO, "%s: cannot open '%s': %s", name, path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return IL_ERR(IL_ERR_IO, "%s: cannot read '%s': it is %s; give a regular file", name, path,
                  file_kind(st.st_mode));
  const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return IL_ERR(IL_ERR_IO, "%s: cannot open '%s': %s", name, path, strerror(errno));
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    return IL_ERR(IL_ERR_IO, "%s: cannot stat '%s': %s", name, path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) { /* swapped since the stat above */
    close(fd);
    return IL_ERR(IL_ERR_IO, "%s: cannot read '%s': it is %s; give a regular file", name, path,
                  file_kind(st.st_mode));
  }
  const int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  *f = fdopen(fd, "rb");
  if (!*f) {
    const int e = errno;
    close(fd);
    return IL_ERR(IL_ERR_IO, "%s: cannot open '%s': %s", name, path, strerror(e));
  }
  return IL_OK;
}

/* "name|name|..." of the spec, for il_cli_suggest. */
static void spec_names(const il_cli *cli, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < cli->nspec; i++) {
    int w = snprintf(buf + used, cap - used, "%s%s", i ? "|" : "", cli->spec[i].name);
    if (w < 0 || (size_t)w >= cap - used) break;
    used += (size_t)w;
  }
}

static il_status unknown_option(const il_cli *cli, const char *shown, const char *name, size_t len) {
  char names[4096], word[SUGGEST_LEN + 1], sug[512];
  spec_names(cli, names, sizeof names);
  snprintf(word, sizeof word, "%.*s", (int)(len < SUGGEST_LEN ? len : SUGGEST_LEN), name);
  if (len <= SUGGEST_LEN && il_cli_suggest(word, names, "--", sug, sizeof sug) > 0)
    return IL_ERR(IL_ERR_ARG, "unknown option '%s'; did you mean %s? (ilbench %s --help lists the options)", shown,
                  sug, cli->command);
  return IL_ERR(IL_ERR_ARG, "unknown option '%s' (ilbench %s --help lists the options)", shown, cli->command);
}

static il_status parse_args(il_cli *cli, const il_cli_spec *spec, int argc, char **argv, int max_positional);

il_status il_cli_parse(il_cli *cli, const char *command, const il_cli_spec *spec, int nspec, int argc,
                       char **argv, int max_positional) {
  memset(cli, 0, sizeof *cli);
  cli->spec = spec;
  cli->nspec = nspec;
  cli->command = command;
  if (nspec > IL_CLI_MAX) return IL_ERR(IL_ERR_INTERNAL, "too many options in spec");
  il_status st = parse_args(cli, spec, argc, argv, max_positional);
  if (st != IL_OK) il_cli_free(cli); /* callers that fail need not free */
  return st;
}

void il_cli_free(il_cli *cli) {
  if (!cli) return;
  free(cli->positional);
  cli->positional = NULL;
  cli->npositional = 0;
}

static il_status parse_args(il_cli *cli, const il_cli_spec *spec, int argc, char **argv, int max_positional) {
  for (int a = 0; a < argc; a++) {
    const char *arg = argv[a];
    if (strcmp(arg, "-h") == 0 && find_spec(cli, "help", 4) >= 0) {
      cli->value[find_spec(cli, "help", 4)] = "1";
      continue;
    }
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
      if (arg[0] == '-' && arg[1] != '\0' && strcmp(arg, "-") != 0 && !(arg[1] == 'o' && arg[2] == '\0')) {
        const char *nm = arg + 1, *eq1 = strchr(nm, '=');
        const size_t l1 = eq1 ? (size_t)(eq1 - nm) : strlen(nm);
        if (find_spec(cli, nm, l1) >= 0)
          return IL_ERR(IL_ERR_ARG, "unknown option '%s'; did you mean '--%.*s'? (options are long: --name value)", arg,
                        (int)l1, nm);
        return IL_ERR(IL_ERR_ARG, "unknown option '%s' (options are long: --name value; -h is --help)", arg);
      }
      if (max_positional >= 0 && cli->npositional >= max_positional)
        return IL_ERR(IL_ERR_ARG, "unexpected argument '%s'", arg);
      if (!cli->positional && !(cli->positional = malloc((size_t)argc * sizeof *cli->positional)))
        return IL_ERR(IL_ERR_NOMEM, "out of memory for %d arguments", argc);
      cli->positional[cli->npositional++] = arg;
      continue;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    int i = find_spec(cli, name, len);
    if (i < 0) {
      char shown[SUGGEST_LEN + 8];
      snprintf(shown, sizeof shown, "--%.*s", (int)(len < SUGGEST_LEN ? len : SUGGEST_LEN), name);
      return unknown_option(cli, shown, name, len);
    }
    if (cli->value[i] && strcmp(spec[i].name, "help") == 0 && !spec[i].takes_value && !eq) continue; /* -h --help */
    if (cli->value[i]) return IL_ERR(IL_ERR_ARG, "option --%s given twice", spec[i].name);
    if (spec[i].takes_value == IL_CLI_OPTIONAL) {
      if (eq) cli->value[i] = eq + 1;
      else if (a + 1 < argc && argv[a + 1][0] != '-') cli->value[i] = argv[++a];
      else cli->value[i] = spec[i].def;
      if (!cli->value[i] || cli->value[i][0] == '\0') return IL_ERR(IL_ERR_ARG, "option --%s has an empty value", spec[i].name);
    } else if (spec[i].takes_value) {
      if (eq) cli->value[i] = eq + 1;
      else if (a + 1 < argc) cli->value[i] = argv[++a];
      else return IL_ERR(IL_ERR_ARG, "option --%s needs a value", spec[i].name);
      if (cli->value[i][0] == '\0') return IL_ERR(IL_ERR_ARG, "option --%s has an empty value", spec[i].name);
    } else {
      if (eq) return IL_ERR(IL_ERR_ARG, "option --%s takes no value", spec[i].name);
      cli->value[i] = "1";
    }
  }
  return IL_OK;
}

const char *il_cli_get(const il_cli *cli, const char *name, const char *def) {
  int i = find_spec(cli, name, strlen(name));
  return (i >= 0 && cli->value[i]) ? cli->value[i] : def;
}

int il_cli_has(const il_cli *cli, const char *name) {
  int i = find_spec(cli, name, strlen(name));
  return i >= 0 && cli->value[i] != NULL;
}

/* Metavars of the declared options seen by il_cli_add_decls (key and metavar point into the
 * ops tables' static declarations). */
#define DECL_METAVARS_MAX 256
static struct {
  const char *key, *metavar;
} decl_metavar[DECL_METAVARS_MAX];
static int ndecl_metavar;

static void remember_metavar(const il_option_decl *d) {
  if (!d->metavar || !d->metavar[0]) return;
  for (int i = 0; i < ndecl_metavar; i++)
    if (strcmp(decl_metavar[i].key, d->key) == 0) return;
  if (ndecl_metavar == DECL_METAVARS_MAX) return; /* help then shows the derived metavar */
  decl_metavar[ndecl_metavar].key = d->key;
  decl_metavar[ndecl_metavar].metavar = d->metavar;
  ndecl_metavar++;
}

/* The fixed options of the subcommands whose metavar is not their upper-cased last word. */
static const struct {
  const char *name, *metavar;
} fixed_metavar[] = {
    {"solver", "NAME"},       {"backward", "MODE"},        {"max-iter", "N"},          {"stop", "RULE"},
    {"hidden", "N"},          {"epochs", "N"},             {"batch", "N"},             {"lr-drop", "EPOCH:LR"},
    {"seed", "N"},            {"data", "DIR"},             {"device", "NAME"},         {"max-batches", "N"},
    {"test-batches", "N"},    {"threads", "N"},            {"zero-nonconverged", "WHEN"},
    {"adjoint-refine", "N"},  {"stop-mode", "MODE"},       {"divtol", "X"},            {"sech2", "MODE"},
    {"diag", "N"},            {"save-params", "FILE"},     {"check-sync", "N"},        {"inject-nan", "RANK:STEP"},
    {"out", "FILE"},          {"array-index", "I"},        {"array-count", "N"},       {"cell", "NAME"},
    {"warmup", "N"},          {"repeat", "N"},             {"precision", "BITS"},      {"adjoint-solver", "NAME"},
    {"scale", "S"},           {"threshold", "REL"},        {"from-list", "FILE"},      {"wait-lock", "SECONDS"},
    {"checkpoint-every", "N"}, {"resume", "FILE[:RUN]"},   {"eval-tol", "TOL"},        {"eval-max-iter", "N"},
    {"rounds", "N"},          {"csv", "FILE"},
    {"jac-reg", "WEIGHT"},    {"jac-reg-samples", "K"},    {"jac-reg-every", "N"},
    {"fp-correction", "K[:GAMMA]"},
    {"best", "RULE"},
    {"trace", "N"},
};

const char *il_cli_metavar(const il_cli_spec *spec) {
  static char derived[64];
  if (!spec || !spec->takes_value) return "";
  for (int i = 0; i < ndecl_metavar; i++)
    if (strcmp(decl_metavar[i].key, spec->name) == 0) return decl_metavar[i].metavar;
  for (size_t i = 0; i < sizeof fixed_metavar / sizeof fixed_metavar[0]; i++)
    if (strcmp(fixed_metavar[i].name, spec->name) == 0) return fixed_metavar[i].metavar;
  const char *last = strrchr(spec->name, '-');
  last = last && last[1] ? last + 1 : spec->name;
  size_t n = 0;
  for (; last[n] && n + 1 < sizeof derived; n++) {
    const unsigned char c = (unsigned char)last[n];
    derived[n] = isalnum(c) ? (char)toupper(c) : '_';
  }
  derived[n] = '\0';
  return n ? derived : "V";
}

int il_cli_add_decls(il_cli_spec *spec, int nspec, int cap, const char *owner, const il_option_decl *decls) {
  static char pool[16384]; /* the generated help texts, alive for the whole program */
  static size_t used;
  if (nspec < 0) return nspec;
  for (const il_option_decl *d = decls; d && d->key; d++) {
    if (d->from_name) continue;
    remember_metavar(d);
    int seen = 0;
    for (int i = 0; i < nspec && !seen; i++) seen = strcmp(spec[i].name, d->key) == 0;
    if (seen) continue;
    if (nspec == cap) {
      IL_ERR(IL_ERR_INTERNAL, "option table full (%d) at --%s", cap, d->key);
      return -1;
    }
    int len = snprintf(pool + used, sizeof pool - used, "%s: %s", owner, d->help ? d->help : "");
    if (len < 0 || (size_t)len >= sizeof pool - used) {
      IL_ERR(IL_ERR_INTERNAL, "option help pool full at --%s", d->key);
      return -1;
    }
    spec[nspec++] = (il_cli_spec){.name = d->key, .takes_value = d->metavar != NULL, .help = pool + used, .def = d->def};
    used += (size_t)len + 1;
  }
  return nspec;
}

/* The options whose value names a registry entry, and the registry (NULL past the end). */
typedef enum { REG_SOLVER, REG_BACKWARD, REG_CELL, REG_DEVICE, REG_N } registry_kind;
static const struct {
  const char *option, *title;
} registries[REG_N] = {
    {"solver", "solvers"}, {"backward", "backward modes"}, {"cell", "cells"}, {"device", "devices"}};

/* Entry i of a registry: its name as --help shows it (phantom:K for a mode taking its option from
 * the name) and its summary; 0 past the end. */
static int registry_entry(registry_kind k, int i, char *name, size_t cap, const char **summary) {
  const char *nm = NULL;
  *summary = "";
  switch (k) {
  case REG_SOLVER: {
    const il_solver_ops *o = il_solver_at(i);
    if (o) nm = o->name, *summary = o->summary;
    break;
  }
  case REG_BACKWARD: {
    const il_backward_ops *o = il_backward_at(i);
    if (!o) break;
    nm = o->name, *summary = o->summary;
    for (const il_option_decl *d = o->options; d && d->key; d++)
      if (d->from_name) {
        snprintf(name, cap, "%s:%s", nm, d->metavar && d->metavar[0] ? d->metavar : "ARG");
        return 1;
      }
    break;
  }
  case REG_CELL: {
    const il_cell_ops *o = il_cell_at(i);
    if (o) nm = o->name, *summary = o->summary;
    break;
  }
  case REG_DEVICE: {
    const il_backend_ops *o = i < il_backend_count() ? il_backend_at(i) : NULL;
    if (o) nm = o->name, *summary = o->summary;
    break;
  }
  default: break;
  }
  if (!nm) return 0;
  if (!*summary) *summary = "";
  snprintf(name, cap, "%s", nm);
  return 1;
}

static int registry_of(const char *option) {
  for (int k = 0; k < REG_N; k++)
    if (strcmp(registries[k].option, option) == 0) return k;
  return -1;
}

void il_cli_usage(const char *command, const char *synopsis, const il_cli_spec *spec, int nspec) {
  printf("usage: ilbench %s %s\n\noptions:\n", command, synopsis);
  int shown[REG_N] = {0};
  for (int i = 0; i < nspec; i++) {
    char left[128];
    const int opt = spec[i].takes_value == IL_CLI_OPTIONAL;
    snprintf(left, sizeof left, "--%s%s%s%s%s", spec[i].name, spec[i].takes_value ? " " : "", opt ? "[" : "",
             il_cli_metavar(&spec[i]), opt ? "]" : "");
    printf("  %-26s %s", left, spec[i].help);
    const int k = spec[i].takes_value ? registry_of(spec[i].name) : -1;
    if (k >= 0) { /* the valid names on the option's line */
      char nm[64];
      const char *summary;
      printf(": ");
      for (int e = 0; registry_entry((registry_kind)k, e, nm, sizeof nm, &summary); e++) printf("%s%s", e ? "|" : "", nm);
      shown[k] = 1;
    }
    if (spec[i].def) printf(" [%s: %s]", opt ? "given alone" : "default", spec[i].def);
    printf("\n");
  }
  for (int k = 0; k < REG_N; k++) { /* then each registry's entries with their summaries */
    if (!shown[k]) continue;
    char nm[64];
    const char *summary;
    printf("\n%s (--%s):\n", registries[k].title, registries[k].option);
    for (int e = 0; registry_entry((registry_kind)k, e, nm, sizeof nm, &summary); e++)
      printf("  %-12s %s\n", nm, summary);
  }
}

il_status il_cli_int(const il_cli *cli, const char *name, long def, long lo, long hi, long *out) {
  const char *v = il_cli_get(cli, name, NULL);
  if (!v) { *out = def; return IL_OK; }
  char what[64];
  snprintf(what, sizeof what, "--%s", name);
  return il_parse_int(v, what, lo, hi, out);
}

il_status il_cli_double(const il_cli *cli, const char *name, double def, double *out) {
  const char *v = il_cli_get(cli, name, NULL);
  if (!v) { *out = def; return IL_OK; }
  char what[64];
  snprintf(what, sizeof what, "--%s", name);
  return il_parse_double(v, what, out);
}

il_status il_cli_positive_double(const il_cli *cli, const char *name, double def, double *out) {
  IL_CHECK(il_cli_double(cli, name, def, out));
  if (!(*out > 0)) return IL_ERR(IL_ERR_ARG, "--%s must be positive, got %g", name, *out);
  return IL_OK;
}

/* Split on commas; empty items are errors (a stray comma is never ignored). */
il_status il_cli_split_list(const char *s, const char *name, char items[][64], int cap, int *n) {
  *n = 0;
  const char *p = s;
  while (1) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == 0) return IL_ERR(IL_ERR_ARG, "--%s: empty item in list '%s'", name, s);
    if (len >= 64) return IL_ERR(IL_ERR_ARG, "--%s: item too long in '%s'", name, s);
    if (*n >= cap) return IL_ERR(IL_ERR_ARG, "--%s: more than %d items in '%s'", name, cap, s);
    memcpy(items[*n], p, len);
    items[*n][len] = '\0';
    (*n)++;
    if (!c) break;
    p = c + 1;
  }
  return IL_OK;
}

il_status il_cli_double_list(const il_cli *cli, const char *name, const char *def, double *vals, int cap, int *n,
                             int positive) {
  const char *v = il_cli_get(cli, name, def);
  char items[64][64];
  if (cap > 64) cap = 64;
  IL_CHECK(il_cli_split_list(v, name, items, cap, n));
  char what[64];
  snprintf(what, sizeof what, "--%s", name);
  for (int i = 0; i < *n; i++) {
    IL_CHECK(il_parse_double(items[i], what, &vals[i]));
    if (positive && !(vals[i] > 0)) return IL_ERR(IL_ERR_ARG, "--%s must be positive, got %s", name, items[i]);
  }
  return IL_OK;
}

il_status il_cli_int_list(const il_cli *cli, const char *name, const char *def, long lo, long hi, long *vals,
                          int cap, int *n) {
  const char *v = il_cli_get(cli, name, def);
  char items[64][64];
  if (cap > 64) cap = 64;
  IL_CHECK(il_cli_split_list(v, name, items, cap, n));
  char what[64];
  snprintf(what, sizeof what, "--%s", name);
  for (int i = 0; i < *n; i++) IL_CHECK(il_parse_int(items[i], what, lo, hi, &vals[i]));
  return IL_OK;
}

il_status il_cli_choice(const il_cli *cli, const char *name, const char *def, const char *choices, const char **out) {
  const char *v = il_cli_get(cli, name, def);
  size_t len = strlen(v);
  const char *p = choices;
  while (*p) {
    const char *bar = strchr(p, '|');
    size_t l = bar ? (size_t)(bar - p) : strlen(p);
    if (l == len && strncmp(p, v, l) == 0) { *out = v; return IL_OK; }
    if (!bar) break;
    p = bar + 1;
  }
  char sug[512];
  if (il_cli_suggest(v, choices, "", sug, sizeof sug) > 0)
    return IL_ERR(IL_ERR_ARG, "--%s: invalid value '%s'; did you mean %s? (valid: %s)", name, v, sug, choices);
  return IL_ERR(IL_ERR_ARG, "--%s: invalid value '%s' (valid: %s)", name, v, choices);
}

int il_cli_in_list(const char *list, const char *key) {
  const size_t k = strlen(key);
  for (const char *c = list; c && *c;) {
    const char *comma = strchr(c, ',');
    const size_t len = comma ? (size_t)(comma - c) : strlen(c);
    if (len == k && strncmp(c, key, k) == 0) return 1;
    if (!comma) break;
    c = comma + 1;
  }
  return 0;
}
