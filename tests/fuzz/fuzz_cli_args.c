/* tests/fuzz/fuzz_cli_args.c: libFuzzer target for the option parser (bench/cli_args.c
 * il_cli_parse) with the real `train` option table (bench/train_options.c il_train_spec), and
 * for what train does next with a parsed command line: il_train_parse (every typed getter,
 * --lr-drop, --inject-nan, the per-solver options, the solver/backward pair check) and the
 * "did you mean" hint ilbench prints with an error (il_cli_hint, il_cli_suggest).
 *
 * Input: the arguments, separated by newlines (at most 64; each NUL-terminated here). So a seed
 * file is simply one argument per line, e.g. "--solver\nnewton\n--tol=1e-3\n".
 * Properties checked besides "no crash, no sanitizer report":
 *   - a failure records a non-empty message;
 *   - after a successful parse, every given value points into argv (or is the flag value "1", or
 *     the def of an optional-value option given bare),
 *     and options that take a value never get an empty one;
 *   - suggestion and hint buffers are always NUL-terminated within their capacity. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "il_status.h"
#include "train_driver.h"

/* train_options.c reports a programming error through ilbench.c's il_report_error. */
void il_report_error(const char *command) { (void)command; }

enum { MAX_ARGS = 64 };

static int points_into(const char *v, char **argv, int argc) {
  if (strcmp(v, "1") == 0) return 1;
  for (int a = 0; a < argc; a++) {
    const size_t n = strlen(argv[a]);
    if (v >= argv[a] && v <= argv[a] + n) return 1;
  }
  return 0;
}

/* Suggestion/hint output must stay inside cap and be terminated; try a few capacities. */
static void check_suggest(const char *word, const char *names, int ncaps) {
  static const size_t caps[] = {512, 7, 1};
  for (int c = 0; c < ncaps; c++) {
    char buf[512 + 8];
    memset(buf, 'X', sizeof buf);
    (void)il_cli_suggest(word, names, "--", buf, caps[c]);
    assert(memchr(buf, '\0', caps[c]) != NULL);
    for (size_t k = caps[c]; k < sizeof buf; k++) assert(buf[k] == 'X');
  }
}

static void check_hint(const char *msg) {
  static const size_t caps[] = {16, 600};
  for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
    char buf[600 + 8];
    memset(buf, 'X', sizeof buf);
    (void)il_cli_hint(msg, buf, caps[c]);
    assert(memchr(buf, '\0', caps[c]) != NULL);
    for (size_t k = caps[c]; k < sizeof buf; k++) assert(buf[k] == 'X');
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *argv[MAX_ARGS + 1];
  int argc = 0;
  for (char *p = text; size > 0 && argc < MAX_ARGS;) { /* empty input: no arguments */
    char *nl = memchr(p, '\n', (size_t)(text + size - p));
    argv[argc++] = p;
    if (!nl) break;
    *nl = '\0';
    p = nl + 1;
    if (p == text + size) break; /* a trailing newline ends the last argument */
  }
  argv[argc] = NULL;
  /* an argument holding a NUL byte ends there, as it would in a real argv */

  int nspec = 0;
  const il_cli_spec *spec = il_train_spec(&nspec);
  assert(spec && nspec > 0 && nspec <= IL_CLI_MAX);

  il_cli cli;
  il_error_clear();
  if (il_cli_parse(&cli, "train", spec, nspec, argc, argv, 0) != IL_OK) {
    const char *msg = il_error_message();
    assert(msg[0]);
    check_hint(msg);
  } else {
    assert(cli.npositional == 0);
    for (int i = 0; i < nspec; i++) {
      if (!cli.value[i]) continue;
      assert(points_into(cli.value[i], argv, argc) || cli.value[i] == spec[i].def); /* a bare optional */
      if (spec[i].takes_value) assert(cli.value[i][0] != '\0');
      assert(il_cli_has(&cli, spec[i].name));
    }
    if (!il_cli_has(&cli, "help")) {
      for (int lenient = 0; lenient <= 1; lenient++) {
        il_train_opts o;
        memset(&o, 0, sizeof o);
        il_error_clear();
        if (il_train_parse_ex(&cli, &o, lenient) != IL_OK) {
          const char *msg = il_error_message();
          assert(msg[0]);
          check_hint(msg);
        } else {
          assert(o.solver && o.backward && o.tol > 0 && o.lr > 0);
          assert(o.ndrops >= 0 && o.ndrops <= IL_TRAIN_MAX_DROPS);
          assert(memchr(o.opts_text, '\0', sizeof o.opts_text) != NULL);
        }
      }
    }
  }

  /* the suggestion engine directly, on each argument against the option names */
  char names[4096];
  size_t used = 0;
  names[0] = '\0';
  for (int i = 0; i < nspec; i++) {
    int w = snprintf(names + used, sizeof names - used, "%s%s", i ? "|" : "", spec[i].name);
    if (w < 0 || (size_t)w >= sizeof names - used) break;
    used += (size_t)w;
  }
  /* (each call is a string-distance matrix per candidate: a few arguments only, to keep it fast) */
  for (int a = 0; a < argc && a < 2; a++) {
    const char *w = argv[a];
    while (*w == '-') w++;
    check_suggest(w, names, 2);
    check_suggest(w, argv[argc - 1], 3); /* arbitrary candidate lists too */
    char items[8][64];
    int n = 0;
    il_error_clear();
    if (il_cli_split_list(argv[a], "x", items, 8, &n) == IL_OK) {
      assert(n >= 1 && n <= 8);
      for (int k = 0; k < n; k++) assert(il_cli_in_list(argv[a], items[k]));
    }
  }
  il_error_clear();
  free(text);
  return 0;
}
