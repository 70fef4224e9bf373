/* bench/cmd_schema.c: `ilbench schema --json`, the results schema as data:
 * every table's columns (name, type, unit, meaning, the version that added
 * them), the enum name tables, the columns renamed in version 3, the root and
 * run attributes the writer knows, and the schema version. All of it comes
 * from bench/results_columns.h; analysis/schema.json is this output, and the
 * analysis scripts read that file (a test keeps the two equal). */
#include <stdio.h>
#include <string.h>

#include <mpi.h>

#include "cli_args.h"
#include "commands.h"
#include "results.h"

/* s as a JSON string (UTF-8 passes through; quotes, backslashes and control characters escaped) */
static void jstr(FILE *o, const char *s) {
  fputc('"', o);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(o, "\\%c", *p);
    else if (*p < 0x20) fprintf(o, "\\u%04x", *p);
    else fputc(*p, o);
  }
  fputc('"', o);
}

static const char *type_code(il_col_type t) {
  static const char *const names[] = {"I32", "I64", "U64", "F64", "STR16", "REASON", "NANORIGIN"};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* 1 when (table, column) was added as an optional column within the current version */
static int optional_column(const char *table, const char *col) {
#define OPT(t, c) if (strcmp(table, t) == 0 && strcmp(col, c) == 0) return 1;
  IL_OPTIONAL_COLUMNS(OPT)
#undef OPT
  return 0;
}

static void print_json(FILE *o) {
  fprintf(o, "{\n  \"schema\": ");
  jstr(o, IL_RESULTS_SCHEMA_NAME);
  fprintf(o, ",\n  \"schema_version\": %d,\n", IL_RESULTS_SCHEMA_VERSION);
  fprintf(o, "  \"types\": {\"I32\": \"int32\", \"I64\": \"int64\", \"U64\": \"uint64\", \"F64\": \"float64\", "
             "\"STR16\": \"string16\", \"REASON\": \"enum32\", \"NANORIGIN\": \"enum32\"},\n");
  fprintf(o, "  \"tables\": {\n");
  for (int t = 0; t < IL_NTABLES; t++) {
    const il_table_desc *d = &il_results_tables[t];
    fprintf(o, "    ");
    jstr(o, d->name);
    fprintf(o, ": {\"optional\": %s, \"columns\": [\n", t == IL_TABLE_EVENTS || t == IL_TABLE_TRACE ? "true" : "false");
    for (int i = 0; i < d->ncols; i++) {
      const il_column *c = &d->cols[i];
      fprintf(o, "      {\"name\": ");
      jstr(o, c->name);
      fprintf(o, ", \"type\": \"%s\", \"unit\": ", type_code(c->type));
      jstr(o, c->unit);
      fprintf(o, ", \"since\": %d, ", c->since);
      if (optional_column(d->name, c->name)) fprintf(o, "\"optional\": true, ");
      fprintf(o, "\"format\": ");
      jstr(o, c->fmt);
      fprintf(o, ", \"meaning\": ");
      jstr(o, c->meaning);
      fprintf(o, "}%s\n", i + 1 < d->ncols ? "," : "");
    }
    fprintf(o, "    ]}%s\n", t + 1 < IL_NTABLES ? "," : "");
  }
  fprintf(o, "  },\n  \"enums\": {\n");
#define ENUM_ITEM(nm, val) fprintf(o, "%s{\"name\": \"%s\", \"value\": %d}", n++ ? ", " : "", nm, val);
  int n = 0;
  fprintf(o, "    \"REASON\": [");
  IL_REASON_ENUM(ENUM_ITEM)
  n = 0;
  fprintf(o, "],\n    \"NANORIGIN\": [");
  IL_NANORIGIN_ENUM(ENUM_ITEM)
  fprintf(o, "]\n  },\n");
#undef ENUM_ITEM
  fprintf(o, "  \"renamed_in_v3\": [");
  n = 0;
#define RENAMED(tb, from, to) \
  fprintf(o, "%s\n    {\"table\": \"%s\", \"from\": \"%s\", \"to\": \"%s\"}", n++ ? "," : "", tb, from, to);
  IL_RENAMED_V3(RENAMED)
#undef RENAMED
  fprintf(o, "\n  ],\n");
#define ATTR(nm, kind, req, meaning)                                                  \
  fprintf(o, "%s\n    {\"name\": \"%s\", \"kind\": \"%s\", \"required\": %s, \"meaning\": ", n++ ? "," : "", #nm, \
          kind, req ? "true" : "false");                                              \
  jstr(o, meaning);                                                                   \
  fputc('}', o);
  n = 0;
  fprintf(o, "  \"root_attrs\": [");
  IL_ROOT_ATTRS(ATTR)
  n = 0;
  fprintf(o, "\n  ],\n  \"run_writer_attrs\": [");
  IL_RUN_WRITER_ATTRS(ATTR)
  n = 0;
  fprintf(o, "\n  ],\n  \"run_config_attrs\": [");
  IL_RUN_CONFIG_ATTRS(ATTR)
#undef ATTR
  fprintf(o, "\n  ]\n}\n");
}

int il_cmd_schema(int argc, char **argv) {
  static const il_cli_spec spec[] = {
      {"json", 0, "print the schema as JSON (the format of analysis/schema.json)", NULL},
      {"help", 0, "show this help", NULL},
  };
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return 0;
  il_cli cli;
  if (il_cli_parse(&cli, "schema", spec, 2, argc, argv, 0) != IL_OK) {
    il_report_error("schema");
    return 2;
  }
  if (il_cli_has(&cli, "help") || !il_cli_has(&cli, "json")) {
    il_cli_usage("schema", "--json", spec, 2);
    return il_cli_has(&cli, "help") ? 0 : 2;
  }
  print_json(stdout);
  return fflush(stdout) == 0 ? 0 : 1;
}
