/* bench/cmd_merge.c: `ilbench merge a.h5 b.h5 ... -o all.h5`, combine the
 * runs of several results files (e.g. from a job array) into one. Refuses
 * incompatible schema versions, duplicate run ids and an existing output
 * (unless --force). Inputs come from the command line and from --from-list
 * FILE (one path a line), in that order, any number of them. Holds the
 * output's writer lock (results_lock.h) throughout, and under it removes the
 * temporaries of killed merges into the same output; the output appears only
 * when complete (results_merge.c). Runs on rank 0 only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mpi.h>

#include "cli_args.h"
#include "commands.h"
#include "results_h5.h"
#include "results_lock.h"
#include "results_merge.h"

typedef struct path_list {
  const char **v; /* into argv or into lines */
  int n, cap;
  char **lines; /* owned: the --from-list entries */
  int nlines, lcap;
} path_list;

static il_status push_path(path_list *l, const char *p) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    const char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return IL_ERR(IL_ERR_NOMEM, "out of memory for %d input paths", cap);
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = p;
  return IL_OK;
}

static void free_paths(path_list *l) {
  for (int i = 0; i < l->nlines; i++) free(l->lines[i]);
  free(l->lines);
  free(l->v);
}

/* One input path a line; blank lines and lines whose first non-blank
 * character is '#' are skipped; a path is taken as written (no trimming
 * but of the line end). */
static il_status read_list(const char *file, path_list *l) {
  FILE *f;
  IL_CHECK(il_cli_open_input(file, "--from-list", &f));
  il_status st = IL_OK;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0;
  errno = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if ((size_t)len != strlen(line)) {
      st = IL_ERR(IL_ERR_ARG, "--from-list '%s': line %ld holds a NUL byte", file, lineno);
      break;
    }
    const char *c = line + strspn(line, " \t");
    if (!*c || *c == '#') continue;
    if (l->nlines == l->lcap) {
      int lc = l->lcap ? 2 * l->lcap : 64;
      char **v = realloc(l->lines, (size_t)lc * sizeof *v);
      if (!v) {
        st = IL_ERR(IL_ERR_NOMEM, "--from-list '%s': out of memory at line %ld", file, lineno);
        break;
      }
      l->lines = v;
      l->lcap = lc;
    }
    if (!(l->lines[l->nlines] = strdup(line))) {
      st = IL_ERR(IL_ERR_NOMEM, "--from-list '%s': out of memory at line %ld", file, lineno);
      break;
    }
    if ((st = push_path(l, l->lines[l->nlines++])) != IL_OK) break;
  }
  if (st == IL_OK && ferror(f))
    st = IL_ERR(IL_ERR_IO, "--from-list '%s': read error after line %ld (%s)", file, lineno, strerror(errno));
  free(line);
  fclose(f);
  return st;
}

int il_cmd_merge(int argc, char **argv) {
  static const il_cli_spec spec[] = {
      {"out", 1, "output file (also -o FILE)", NULL},
      {"force", 0, "replace an existing output file (only once the new one is complete)", NULL},
      {"from-list", 1, "read input paths from FILE, one a line (blank lines and # comments skipped)", NULL},
      {"wait-lock", 1, "wait up to SECONDS for another writer of the output to finish", "0"},
      {"help", 0, "show this help", NULL},
  };
  enum { NSPEC = sizeof spec / sizeof spec[0] };
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return 0;
  il_cli cli;
  path_list in = {0};
  il_results_lock *lock = NULL;
  int rc = 1;
  if (il_cli_parse(&cli, "merge", spec, NSPEC, argc, argv, IL_CLI_ANY_POSITIONAL) != IL_OK) goto usage;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("merge", "IN.h5 [IN.h5 ...] [--from-list FILE] -o OUT.h5", spec, NSPEC);
    rc = 0;
    goto out;
  }
  const char *out = il_cli_get(&cli, "out", NULL);
  for (int i = 0; i < cli.npositional; i++) {
    if (strcmp(cli.positional[i], "-o") == 0) {
      if (out || i + 1 >= cli.npositional) {
        IL_ERR(IL_ERR_ARG, out ? "output given twice" : "-o needs a file name");
        goto usage;
      }
      out = cli.positional[++i];
    } else if (push_path(&in, cli.positional[i]) != IL_OK) {
      goto fail;
    }
  }
  double wait_s = 0;
  if (il_cli_double(&cli, "wait-lock", 0, &wait_s) != IL_OK) goto usage;
  if (!(wait_s >= 0) || wait_s > 1e7) {
    IL_ERR(IL_ERR_ARG, "option --wait-lock must be a number of seconds from 0 to 1e7, not '%s'",
           il_cli_get(&cli, "wait-lock", ""));
    goto usage;
  }
  if (!out) {
    IL_ERR(IL_ERR_ARG, "no output file: use -o OUT.h5");
    goto usage;
  }
  const char *list = il_cli_get(&cli, "from-list", NULL);
  if (list && read_list(list, &in) != IL_OK) goto fail;
  if (in.n == 0) {
    if (list) IL_ERR(IL_ERR_ARG, "no input files (--from-list '%s' lists none)", list);
    else IL_ERR(IL_ERR_ARG, "no input files");
    goto usage;
  }
  if (il_cli_check_out_path(out, "the output (-o)") != IL_OK) goto usage;
  for (int i = 0; i < in.n; i++) { /* HDF5 would block in open() on a FIFO: refuse special files first */
    FILE *f;
    if (il_cli_open_input(in.v[i], "input", &f) != IL_OK) goto fail;
    fclose(f);
  }
  const int force = il_cli_has(&cli, "force");
  struct stat sb;
  if (!force && stat(out, &sb) == 0) { /* before the lock file: a refused merge writes nothing */
    IL_ERR(IL_ERR_ARG, "results file '%s' exists; use --force to replace it", out);
    goto fail;
  }
  if (il_results_lock_acquire(out, wait_s, &lock) != IL_OK) goto fail;
  const char *nolock = getenv("ILBENCH_NO_LOCK");
  if (!nolock || !nolock[0] || strcmp(nolock, "0") == 0) { /* held: any temporary of out is a killed merge's */
    int removed = 0;
    if (il_h5_merge_remove_stale(out, &removed) != IL_OK) {
      fprintf(stderr, "ilbench merge: note: %s\n", il_error_message());
      il_error_clear();
    } else if (removed) {
      fprintf(stderr, "ilbench merge: removed %d temporary file(s) that killed merges into %s left\n", removed, out);
    }
  }
  if (il_h5_merge(out, force, in.v, in.n) != IL_OK) goto fail;
  printf("merged %d file(s) into %s\n", in.n, out);
  rc = 0;
  goto out;
usage:
  rc = 2;
fail:
  il_report_error("merge");
out:
  il_results_lock_release(lock);
  free_paths(&in);
  il_cli_free(&cli);
  return rc;
}
