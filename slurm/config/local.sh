# shellcheck shell=bash disable=SC2034
# slurm/config/local.sh -- this single workstation (one node, 2 CPUs, no GPU).
# Sourced (bash) by slurm/submit-sweep on the submit host and by
# slurm/ilbench.sbatch inside each job. Pick another file with
# ILBENCH_CONFIG=<name> or `slurm/submit-sweep --config <name>`.

ILB_PARTITION=debug        # sbatch -p
ILB_NODES=1                # sbatch -N
ILB_NTASKS_PER_NODE=2      # sbatch --ntasks-per-node (= MPI ranks per node)
ILB_CPUS_PER_TASK=1        # sbatch -c
ILB_GPUS_PER_NODE=0        # sbatch --gpus-per-node when > 0; also sets CUDA_VISIBLE_DEVICES per rank
ILB_TIME=auto              # sbatch -t for each array task; auto: slurm/estimate-time from layer timings
ILB_MERGE_TIME=00:05:00    # sbatch -t for the merge/report job
ILB_LAUNCHER=srun-pmix     # srun-pmix (srun --mpi=pmix) or mpirun (mpirun inside the allocation)
ILB_SBATCH_EXTRA=()        # any further sbatch options, e.g. (--account=abc --qos=short)

# Environment setup run inside each job before the launch (modules, venvs ...).
ilb_job_setup() { :; }
