/* bench/results.c: building a run's configuration as ordered key/value
 * attributes (il_run_info), and an empty step row. No HDF5 here;
 * results_h5.c writes them. */
#include "results.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void il_step_row_init(il_step_row *r) {
  memset(r, 0, sizeof *r);
  r->diag_rho_max = r->diag_rho_mean = NAN;
  r->diag_cond = NAN;
  r->diag_grad_cos = r->diag_grad_relerr = NAN;
  r->diag_preact_max = NAN;
  r->nan_origin = IL_NAN_NONE;
  r->nan_iter = -1;
}

void il_run_info_init(il_run_info *ri, const char *run_id) {
  memset(ri, 0, sizeof *ri);
  if (run_id) snprintf(ri->run_id, sizeof ri->run_id, "%s", run_id);
}

/* A new slot for `key`, or an error: no room, empty/too long key, or a key already set. */
static il_status new_attr(il_run_info *ri, const char *key, il_attr **out) {
  if (!ri || !key || !key[0]) return IL_ERR(IL_ERR_ARG, "run attribute key is empty");
  if (strlen(key) >= sizeof ri->attrs[0].key)
    return IL_ERR(IL_ERR_ARG, "run attribute key '%s' is too long (at most %zu characters)", key,
                  sizeof ri->attrs[0].key - 1);
  for (int i = 0; i < ri->nattrs; i++)
    if (strcmp(ri->attrs[i].key, key) == 0) return IL_ERR(IL_ERR_ARG, "run attribute '%s' is set twice", key);
  if (ri->nattrs >= IL_RUN_ATTRS_MAX)
    return IL_ERR(IL_ERR_ARG, "too many run attributes (at most %d) when adding '%s'", IL_RUN_ATTRS_MAX, key);
  il_attr *a = &ri->attrs[ri->nattrs];
  memset(a, 0, sizeof *a);
  memcpy(a->key, key, strlen(key) + 1);
  *out = a;
  return IL_OK;
}

il_status il_run_attr_s(il_run_info *ri, const char *key, const char *v) {
  il_attr *a;
  if (!v) v = "";
  if (strlen(v) >= sizeof a->s)
    return IL_ERR(IL_ERR_ARG, "value of run attribute '%s' is too long (%zu characters, at most %zu)", key ? key : "",
                  strlen(v), sizeof a->s - 1);
  IL_CHECK(new_attr(ri, key, &a));
  a->kind = 's';
  memcpy(a->s, v, strlen(v) + 1);
  ri->nattrs++;
  return IL_OK;
}

il_status il_run_attr_d(il_run_info *ri, const char *key, double v) {
  il_attr *a;
  IL_CHECK(new_attr(ri, key, &a));
  a->kind = 'd';
  a->d = v;
  ri->nattrs++;
  return IL_OK;
}

il_status il_run_attr_i(il_run_info *ri, const char *key, int64_t v) {
  il_attr *a;
  IL_CHECK(new_attr(ri, key, &a));
  a->kind = 'i';
  a->i = v;
  ri->nattrs++;
  return IL_OK;
}
