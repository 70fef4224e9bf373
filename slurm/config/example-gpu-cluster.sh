# shellcheck shell=bash disable=SC2034
# slurm/config/example-gpu-cluster.sh -- EXAMPLE for a multi-node GPU cluster.
# Copy it (e.g. to slurm/config/mycluster.sh), adapt it, then
#   slurm/submit-sweep --config mycluster --tasks 8 -- --solver fp,newton ...
#
# NOTE: the CUDA backend of ilbench (--device cuda) is a future feature. The
# GPU settings below already reserve GPUs and give each rank one GPU
# (CUDA_VISIBLE_DEVICES=$SLURM_LOCALID), so that the scripts need no change
# when it lands; today ilbench runs on the CPUs of those nodes.

ILB_PARTITION=gpu
ILB_NODES=2
ILB_NTASKS_PER_NODE=4      # one MPI rank per GPU
ILB_CPUS_PER_TASK=8
ILB_GPUS_PER_NODE=4
ILB_TIME=02:00:00
ILB_MERGE_TIME=00:20:00
ILB_LAUNCHER=srun-pmix     # or mpirun if the site's srun lacks PMIx (check: srun --mpi=list)
ILB_SBATCH_EXTRA=()        # e.g. (--account=myproject --qos=normal --exclusive)

ilb_job_setup() {
    # module purge
    # module load gcc/12 openmpi/4.1 hdf5/1.10-openmpi openblas
    # module load cuda/13.0
    :
}
