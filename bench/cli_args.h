/* bench/cli_args.h: strict long-option parsing for the ilbench subcommands.
 * Each subcommand declares the options it accepts; anything else is an error
 * that names the option and suggests the nearest valid ones ("did you mean").
 * Nothing is silently ignored. */
#ifndef IL_CLI_ARGS_H
#define IL_CLI_ARGS_H

#include <stddef.h>
#include <stdio.h>

#include "il_options.h"
#include "il_status.h"

/* An option of a subcommand. Its metavar in --help (`--tol TOL`) is not a field, so that the
 * positional tables ({"tol", 1, "help", "1e-4"}) stay complete initializers: il_cli_metavar
 * derives it (the declaration's metavar for a solver's or backward mode's option added by
 * il_cli_add_decls, a small table for the fixed options, else the upper-cased last word). */
typedef struct il_cli_spec {
  const char *name;    /* without leading dashes */
  int takes_value;     /* 0 for flags, 1 for a value, IL_CLI_OPTIONAL for an optional one */
  const char *help;
  const char *def;     /* default shown in --help, or NULL; IL_CLI_OPTIONAL: the value of the option given bare */
} il_cli_spec;
/* takes_value of an option whose value may be left out (`--best`, `--best sample`, `--best=sample`):
 * the next argument is its value unless it starts with '-' (so only for commands without positionals);
 * given bare, its value is def. */
#define IL_CLI_OPTIONAL 2

#define IL_CLI_MAX 96

typedef struct il_cli {
  const il_cli_spec *spec;
  int nspec;
  const char *value[IL_CLI_MAX]; /* NULL when not given; flags get "1" */
  /* npositional pointers into argv, in order; NULL when none. Allocated by il_cli_parse
   * (freed by il_cli_free), read-only, so copies of the struct may share it. */
  const char **positional;
  int npositional;
  const char *command;
} il_cli;

/* argv excludes the program and the subcommand. -h is --help where the spec has "help". An
 * unknown option is an error that suggests the nearest valid ones (il_cli_suggest) and points
 * to --help, instead of listing every option. At most max_positional arguments that are not
 * options are accepted (IL_CLI_ANY_POSITIONAL: any number); with max_positional > 0 call
 * il_cli_free when done (a failed parse has freed everything already). */
#define IL_CLI_ANY_POSITIONAL (-1)
il_status il_cli_parse(il_cli *cli, const char *command, const il_cli_spec *spec, int nspec, int argc,
                       char **argv, int max_positional);
/* Free the positional list (cli may be NULL; safe to call twice, or after a parse that took none). */
void il_cli_free(il_cli *cli);
/* Value of an option, or def when absent. */
const char *il_cli_get(const il_cli *cli, const char *name, const char *def);
int il_cli_has(const il_cli *cli, const char *name);
/* Prints "--name METAVAR  help [default: def]" per option. The options naming a registry entry
 * (--solver, --backward, --cell, --device) list the valid names on their line, and a section per
 * such option after the options gives each name with its summary (il_solver_at, il_backward_at,
 * il_cell_at, il_backend_at). */
void il_cli_usage(const char *command, const char *synopsis, const il_cli_spec *spec, int nspec);
/* The metavar --help shows for an option taking a value (see il_cli_spec); "" for a flag.
 * Never NULL; a derived one lives in a static buffer, valid until the next call. */
const char *il_cli_metavar(const il_cli_spec *spec);

/* Typed getters with range checks; messages name the option. */
il_status il_cli_int(const il_cli *cli, const char *name, long def, long lo, long hi, long *out);
il_status il_cli_double(const il_cli *cli, const char *name, double def, double *out);
il_status il_cli_positive_double(const il_cli *cli, const char *name, double def, double *out);
/* Comma lists: "1e-2,1e-4". Returns count in *n (max cap). */
il_status il_cli_double_list(const il_cli *cli, const char *name, const char *def, double *vals, int cap, int *n,
                             int positive);
il_status il_cli_int_list(const il_cli *cli, const char *name, const char *def, long lo, long hi, long *vals,
                          int cap, int *n);
/* Split a comma list into items[cap][64]; empty items and overlong items are errors naming --name. */
il_status il_cli_split_list(const char *s, const char *name, char items[][64], int cap, int *n);
/* 1 when key is an item of the comma list. */
int il_cli_in_list(const char *list, const char *key);
/* Append to spec[0..nspec) one flag per declaration of a component (solver or backward mode)
 * named owner, help "owner: help"; keys already in spec and from_name declarations are
 * skipped. The declarations' metavars are remembered for il_cli_metavar (the first one
 * seen for a key wins, as its help does). Returns the new count; IL_ERR_INTERNAL (as -1)
 * when cap would be exceeded. */
int il_cli_add_decls(il_cli_spec *spec, int nspec, int cap, const char *owner, const il_option_decl *decls);
/* Check a value is one of a '|'-separated set of choices; a near miss gets "did you mean". */
il_status il_cli_choice(const il_cli *cli, const char *name, const char *def, const char *choices, const char **out);

/* "Did you mean": the candidates (a list separated by ',', '|' or blanks) nearest to word, written
 * to buf as "'newton'", "'a' or 'b'" or "'a', 'b' or 'c'" with prefix before each ("--" for options).
 * Near is a case-insensitive Damerau-Levenshtein (optimal string alignment) distance of at most 1
 * (names under 5 characters) or 2, the nearest ones only; failing that, candidates word is a prefix
 * of (word at least 2 characters) or that are a prefix of word (at least 3), up to 5. A ":ARG" of
 * word (phantom:3) is kept on a suggestion without one. Returns the number suggested (0: buf ""). */
int il_cli_suggest(const char *word, const char *candidates, const char *prefix, char *buf, size_t cap);
/* For a message of the form "... 'VALUE' (valid: A, B, C)" (also "(this build has: ...)" and
 * "'VALUE' is not one of A|B"), as the registries and option parsers write them: buf gets
 * "did you mean 'B'?" when a candidate is near VALUE (il_cli_suggest). 0 (buf "") when the message
 * has no such form, already says "did you mean", or nothing is near. */
int il_cli_hint(const char *msg, char *buf, size_t cap);

/* The directory part of an output path (--out FILE, merge -o FILE) must exist and be a writable
 * directory, and path must not itself be a directory; checked before HDF5 touches it, so
 * that the message says "directory 'x/' of --out does not exist" rather than an HDF5 error
 * string. what names the option in the message ("--out"). IL_ERR_ARG (a usage error) when not. */
il_status il_cli_check_out_path(const char *path, const char *what);

/* Open an input file for reading, named in messages by `name` ("--init-from", "input"): *f gets a
 * FILE opened "rb". Only a regular file is opened: a FIFO, socket, device or directory is refused
 * with a message naming it (open() on a FIFO would block until a writer appears), and so is a
 * path that becomes one between the check and the open (O_NONBLOCK, then fstat). IL_ERR_IO when
 * the file is missing, unreadable or not regular. */
il_status il_cli_open_input(const char *path, const char *name, FILE **f);

#endif
