# The kill campaign (scripts/kill-campaign) as CI tests. Included from tests/CMakeLists.txt with
# include(kill_campaign_tests.cmake).
find_program(IL_BASH bash REQUIRED)

# scripts/kill-campaign --quick (3 SIGKILLs per scenario at random times): killed `train
# --append` and `sweep --append` runs leave a readable, schema-valid file with every earlier
# run bit for bit intact; a killed `merge --force` leaves the old output or a complete new one.
# The resume test: a killed `train --checkpoint-every` continued with `--resume` ends with the
# parameters and steps rows of an uninterrupted run. Timing-based, so run alone. Skipped (77)
# without data/mnist or h5py unless ILBENCH_REQUIRE_DATA=1.
set(IL_KILL_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_mpi_yield_when_idle=1")
if(ILBENCH_SANITIZE)
  list(APPEND IL_KILL_ENV "ASAN_OPTIONS=detect_leaks=0") # Open MPI leaks in MPI_Init (tests/cli/CMakeLists.txt)
endif()
add_test(NAME kill_campaign_quick
         COMMAND ${IL_BASH} ${CMAKE_SOURCE_DIR}/scripts/kill-campaign --quick --scenarios train,sweep,merge
                 --ilbench $<TARGET_FILE:ilbench>)
add_test(NAME kill_campaign_resume_quick
         COMMAND ${IL_BASH} ${CMAKE_SOURCE_DIR}/scripts/kill-campaign --quick --scenarios resume
                 --ilbench $<TARGET_FILE:ilbench>)
set_tests_properties(kill_campaign_quick kill_campaign_resume_quick PROPERTIES LABELS "cli;e2e;kill"
                     TIMEOUT 300 RUN_SERIAL TRUE SKIP_RETURN_CODE 77 ENVIRONMENT "${IL_KILL_ENV}")
