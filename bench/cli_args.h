/* bench/cli_args.h: strict long-option parsing for the ilbench subcommands.
 * Each subcommand declares the options it accepts; anything else is an error
 * that names the option and lists the valid ones. Nothing is silently ignored. */
#ifndef IL_CLI_ARGS_H
#define IL_CLI_ARGS_H

#include "il_options.h"
#include "il_status.h"

/* An option of a subcommand. Its metavar in --help (`--tol TOL`) is not a field, so that the
 * positional tables ({"tol", 1, "help", "1e-4"}) stay complete initializers: il_cli_metavar
 * derives it (the declaration's metavar for a solver's or backward mode's option added by
 * il_cli_add_decls, a small table for the fixed options, else the upper-cased last word). */
typedef struct il_cli_spec {
  const char *name;    /* without leading dashes */
  int takes_value;     /* 0 for flags */
  const char *help;
  const char *def;     /* default shown in --help, or NULL */
} il_cli_spec;

#define IL_CLI_MAX 96

typedef struct il_cli {
  const il_cli_spec *spec;
  int nspec;
  const char *value[IL_CLI_MAX]; /* NULL when not given; flags get "1" */
  const char *positional[16];
  int npositional;
  const char *command;
} il_cli;

/* argv excludes the program and the subcommand. */
il_status il_cli_parse(il_cli *cli, const char *command, const il_cli_spec *spec, int nspec, int argc,
                       char **argv, int max_positional);
/* Value of an option, or def when absent. */
const char *il_cli_get(const il_cli *cli, const char *name, const char *def);
int il_cli_has(const il_cli *cli, const char *name);
/* Prints "--name METAVAR  help [default: def]" per option. */
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
/* Check a value is one of a '|'-separated set of choices. */
il_status il_cli_choice(const il_cli *cli, const char *name, const char *def, const char *choices, const char **out);

#endif
