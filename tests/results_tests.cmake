# Results-file tests (parallel HDF5 under mpiexec, 2 ranks). Included from
# tests/CMakeLists.txt with include(results_tests.cmake).
set(IL_RESULTS_TEST_ENV
  "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_mpi_yield_when_idle=1;HDF5_USE_FILE_LOCKING=FALSE")
if(ILBENCH_SANITIZE)
  # Open MPI leaks in MPI_Init/MPI_Finalize (frames in unloaded MCA plugins that
  # no suppression can name); ASan's other checks stay on.
  list(APPEND IL_RESULTS_TEST_ENV "ASAN_OPTIONS=detect_leaks=0")
endif()

function(il_results_exe name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE ilbench_results PkgConfig::CMOCKA m)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_compile_options(${name} PRIVATE -UNDEBUG)
endfunction()

# Round trip of every value written by 2 ranks; create/append/force and bad
# paths; merge and its refusals (schema version, duplicate run ids).
il_results_exe(test_results_h5 ${CMAKE_CURRENT_LIST_DIR}/test_results_h5.c)
add_test(NAME test_results_h5
         COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe $<TARGET_FILE:test_results_h5>)
set_tests_properties(test_results_h5 PROPERTIES ENVIRONMENT "${IL_RESULTS_TEST_ENV}" LABELS "mpi;results"
                     TIMEOUT 120)

# A 2-rank writer killed with SIGKILL mid-run leaves a file that h5dump and
# h5py read, with status "running" and every flushed epoch. Skips (77)
# without h5dump or h5py.
find_program(IL_BASH bash REQUIRED)
il_results_exe(h5_kill_writer ${CMAKE_CURRENT_LIST_DIR}/h5_kill_writer.c)
add_test(NAME test_h5_killsafe
         COMMAND ${IL_BASH} ${CMAKE_CURRENT_LIST_DIR}/test_h5_killsafe.sh $<TARGET_FILE:h5_kill_writer>
                 ${MPIEXEC_EXECUTABLE})
set_tests_properties(test_h5_killsafe PROPERTIES ENVIRONMENT "${IL_RESULTS_TEST_ENV}" LABELS "mpi;results"
                     TIMEOUT 120 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)

# The writer lock of a results file (bench/results_lock.h): a second writer (a
# forked child) is refused with the holder's pid, --wait-lock waits, a lock
# file left by a SIGKILLed holder is taken, an overlong base name gets the
# hashed lock name, ILBENCH_NO_LOCK=1 takes none. Serial, no MPI.
il_results_exe(test_results_lock ${CMAKE_CURRENT_LIST_DIR}/test_results_lock.c)
add_test(NAME test_results_lock COMMAND test_results_lock)
set_tests_properties(test_results_lock PROPERTIES LABELS "results" TIMEOUT 60)
