# End-to-end Slurm test: a private single-node Slurm (installed with apt-get
# when missing; needs root), a 2-task job-array sweep through
# slurm/submit-sweep, merge, schema check, report. Skips (77) when Slurm or
# munge cannot be installed or started, or MNIST is missing (unless
# ILBENCH_REQUIRE_DATA=1). Included from tests/CMakeLists.txt.
find_program(IL_BASH bash REQUIRED)
add_test(NAME slurm_sweep
         COMMAND ${IL_BASH} ${CMAKE_CURRENT_LIST_DIR}/test_slurm.sh ${CMAKE_SOURCE_DIR} $<TARGET_FILE:ilbench>)
set_tests_properties(slurm_sweep PROPERTIES LABELS "slurm;e2e" TIMEOUT 600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
