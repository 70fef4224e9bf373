/* bench/stop_signal.h: SIGTERM and SIGINT as a request to stop cleanly.
 * The first signal only sets a flag: training ends the current step, writes a
 * checkpoint, marks the run `interrupted` and exits 128 + signal (143, 130).
 * A second SIGINT (Ctrl-C twice) ends the process at once. Repeated SIGTERMs
 * are not escalated: Slurm and mpirun may each deliver one for the same stop,
 * and the checkpoint must still be written. */
#ifndef IL_STOP_SIGNAL_H
#define IL_STOP_SIGNAL_H

/* Install the handlers (idempotent). */
void il_stop_install(void);
/* The signal that asked to stop (SIGTERM, SIGINT), or 0. */
int il_stop_requested(void);
/* "SIGTERM", "SIGINT", or "signal N". */
const char *il_stop_name(int sig);

#endif
