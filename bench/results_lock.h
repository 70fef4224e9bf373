/* bench/results_lock.h: the exclusive writer lock of a results file.
 *
 * One writer at a time per results file: the writer holds an advisory
 * flock(LOCK_EX) on a sibling lock file for as long as it has the results file
 * open. The lock file is "<path>.lock" (or, where that name would pass
 * NAME_MAX, ".ilbench-<fnv1a64 of the base name>.lock" in the same directory)
 * and holds "pid=<pid> host=<host> since=<ISO time>" of the holder, so that a
 * refusal can name it. The results file itself is never flocked, so readers
 * (h5py, h5dump, HDF5's own shared lock) are never blocked. The lock file is
 * removed on release; a holder killed with SIGKILL leaves it behind unlocked,
 * and the next writer simply takes it (flock dies with its process).
 *
 * Serial, library style: nothing prints or exits. */
#ifndef IL_RESULTS_LOCK_H
#define IL_RESULTS_LOCK_H

#include <stddef.h>

#include "il_status.h"

typedef struct il_results_lock il_results_lock;

/* Take the writer lock of results file `path`. wait_s = 0 refuses at once when
 * another process holds it; wait_s > 0 retries for up to wait_s seconds. The
 * refusal is IL_ERR_IO with a message naming the results file, the lock file
 * and the holder's pid and host (as the holder wrote them). A filesystem
 * without flock (ENOLCK, ENOSYS, EOPNOTSUPP, EINVAL, e.g. Lustre mounted
 * without -o flock) is IL_ERR_UNSUPPORTED with a message saying so and that
 * ILBENCH_NO_LOCK=1 writes without the lock. With ILBENCH_NO_LOCK=1 in the
 * environment no lock is taken and *out is a valid, empty lock. */
il_status il_results_lock_acquire(const char *path, double wait_s, il_results_lock **out);

/* Release and free (l may be NULL): removes the lock file, then unlocks. */
void il_results_lock_release(il_results_lock *l);

/* The lock file's path for results file `path` into buf (cap bytes). */
il_status il_results_lock_path(const char *path, char *buf, size_t cap);

#endif
