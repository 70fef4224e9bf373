/* bench/commands.h: the ilbench subcommands. Each returns a process exit code. */
#ifndef IL_COMMANDS_H
#define IL_COMMANDS_H

int il_cmd_train(int argc, char **argv);
int il_cmd_layer(int argc, char **argv);
int il_cmd_gradcheck(int argc, char **argv);
int il_cmd_info(int argc, char **argv);
int il_cmd_sweep(int argc, char **argv);
int il_cmd_merge(int argc, char **argv);
int il_cmd_selftest(int argc, char **argv);

/* The whole command line (program, subcommand, options), for results files. */
extern int il_main_argc;
extern char **il_main_argv;

/* Print the recorded error (message + trace when ILBENCH_TRACE is set) as "ilbench <cmd>: error: ..." */
void il_report_error(const char *command);
double il_now(void); /* monotonic seconds */
/* Physical memory in bytes, 0 if unknown. */
unsigned long long il_phys_mem(void);

#endif
