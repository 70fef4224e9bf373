/* bench/cli_args.c: see cli_args.h. */
#include "cli_args.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "il_options.h"

static int find_spec(const il_cli *cli, const char *name, size_t len) {
  for (int i = 0; i < cli->nspec; i++)
    if (strlen(cli->spec[i].name) == len && strncmp(cli->spec[i].name, name, len) == 0) return i;
  return -1;
}

static void list_valid(const il_cli *cli, char *buf, size_t cap) {
  buf[0] = '\0';
  for (int i = 0; i < cli->nspec; i++) {
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s--%s", i ? " " : "", cli->spec[i].name);
  }
}

il_status il_cli_parse(il_cli *cli, const char *command, const il_cli_spec *spec, int nspec, int argc,
                       char **argv, int max_positional) {
  memset(cli, 0, sizeof *cli);
  cli->spec = spec;
  cli->nspec = nspec;
  cli->command = command;
  if (nspec > IL_CLI_MAX) return IL_ERR(IL_ERR_INTERNAL, "too many options in spec");
  for (int a = 0; a < argc; a++) {
    const char *arg = argv[a];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
      if (arg[0] == '-' && arg[1] != '\0' && strcmp(arg, "-") != 0 && !(arg[1] == 'o' && arg[2] == '\0'))
        return IL_ERR(IL_ERR_ARG, "unknown option '%s' (options are long: --name value)", arg);
      if (cli->npositional >= max_positional || cli->npositional >= 16)
        return IL_ERR(IL_ERR_ARG, "unexpected argument '%s'", arg);
      cli->positional[cli->npositional++] = arg;
      continue;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    int i = find_spec(cli, name, len);
    if (i < 0) {
      char valid[1024];
      list_valid(cli, valid, sizeof valid);
      return IL_ERR(IL_ERR_ARG, "unknown option '--%.*s' (valid: %s)", (int)len, name, valid);
    }
    if (cli->value[i]) return IL_ERR(IL_ERR_ARG, "option --%s given twice", spec[i].name);
    if (spec[i].takes_value) {
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
    {"scale", "S"},           {"threshold", "REL"},
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
    spec[nspec++] = (il_cli_spec){.name = d->key, .takes_value = 1, .help = pool + used, .def = d->def};
    used += (size_t)len + 1;
  }
  return nspec;
}

void il_cli_usage(const char *command, const char *synopsis, const il_cli_spec *spec, int nspec) {
  printf("usage: ilbench %s %s\n\noptions:\n", command, synopsis);
  for (int i = 0; i < nspec; i++) {
    char left[128];
    snprintf(left, sizeof left, "--%s%s%s", spec[i].name, spec[i].takes_value ? " " : "", il_cli_metavar(&spec[i]));
    printf("  %-26s %s", left, spec[i].help);
    if (spec[i].def) printf(" [default: %s]", spec[i].def);
    printf("\n");
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
