/* core/il_options.h: per-component options as key=value pairs.
 * Each solver or backward mode consumes only the keys it knows; whatever is
 * left unconsumed afterwards is an error naming the key, so a misspelled
 * option can never be silently ignored. */
#ifndef IL_OPTIONS_H
#define IL_OPTIONS_H

#include "il_status.h"

#define IL_OPTIONS_MAX 32

typedef struct il_option {
  char key[48];
  char value[80];
  int used;
} il_option;

typedef struct il_options {
  il_option items[IL_OPTIONS_MAX];
  int count;
} il_options;

/* A component's declaration of one option it consumes: what --help shows and
 * what the CLI builds its flags from (precision-neutral, no il_real). An ops
 * table's `options` is an array of these ended by an entry with key == NULL. */
typedef struct il_option_decl {
  const char *key;     /* e.g. "anderson-m" */
  const char *metavar; /* e.g. "M" in --help; NULL: a flag without a value (--broyden-ls), whose value is "1" when given */
  const char *help;    /* without the component's name; the valid range the create() enforces */
  const char *def;     /* default shown in --help, or NULL */
  int sweepable;       /* 1: `ilbench sweep` may take a comma list of values for it */
  int from_name;       /* 1: set from the mode's name ("phantom:K" -> phantom-k), not a flag of its own */
} il_option_decl;

/* The declaration of key in a NULL-terminated decl array (NULL array allowed), or NULL. */
const il_option_decl *il_option_decl_find(const il_option_decl *decls, const char *key);

void il_options_init(il_options *o);
il_status il_options_set(il_options *o, const char *key, const char *value);
/* Lookups mark the key used. Missing key -> *out = default, IL_OK. Bad value -> IL_ERR_ARG naming key and value. */
il_status il_options_get_int(il_options *o, const char *key, int def, int lo, int hi, int *out);
il_status il_options_get_double(il_options *o, const char *key, double def, double lo, double hi, double *out);
/* One of the '|'-separated `choices` (e.g. "lu|fp|gmres"); *out points into `choices`' copy kept in o or to def. */
il_status il_options_get_choice(il_options *o, const char *key, const char *def, const char *choices,
                                const char **out);
/* IL_ERR_ARG naming the first unconsumed key, with `context` (e.g. "solver newton") in the message. */
il_status il_options_check_all_used(const il_options *o, const char *context);

/* Strict number parsing shared by the CLI: whole string must parse, finite. */
il_status il_parse_double(const char *s, const char *what, double *out);
il_status il_parse_int(const char *s, const char *what, long lo, long hi, long *out);

#endif
