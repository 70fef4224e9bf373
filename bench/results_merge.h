/* bench/results_merge.h: helpers of the serial merge (results_merge.c) beyond
 * il_h5_merge itself (declared in results_h5.h). Library style: nothing prints. */
#ifndef IL_RESULTS_MERGE_H
#define IL_RESULTS_MERGE_H

#include "il_status.h"

/* Remove the temporary files that merges into out_path left when killed before
 * their end (".<base>.tmp-<pid>-<random>" in out_path's directory, or the
 * hashed name used for long base names); *removed (may be NULL) counts them.
 * Call only while holding out_path's writer lock (results_lock.h): a merge
 * running now would hold it too, so every such file is then a dead merge's. */
il_status il_h5_merge_remove_stale(const char *out_path, int *removed);

#endif
