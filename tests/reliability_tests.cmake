# Results that survive anything: full disks, checkpoints and resume, one
# writer per file, long paths. Shell tests over the real ilbench under
# mpiexec; skipped (77) without data/mnist or h5py (full_disk: without root).
# Included from tests/CMakeLists.txt.
set(IL_RELIABILITY_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_mpi_yield_when_idle=1")
if(ILBENCH_SANITIZE)
  list(APPEND IL_RELIABILITY_ENV "ASAN_OPTIONS=detect_leaks=0")
endif()
foreach(t full_disk resume concurrent_writers)
  add_test(NAME reliability_${t}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_${t}.sh $<TARGET_FILE:ilbench> ${MPIEXEC_EXECUTABLE}
                   ${CMAKE_SOURCE_DIR}/data/mnist)
  set(labels "mpi;results;reliability")
  if(NOT t STREQUAL "resume")
    list(APPEND labels e2e) # the sanitizer build runs the resume test only: these take a minute each
  endif()
  set_tests_properties(reliability_${t} PROPERTIES ENVIRONMENT "${IL_RELIABILITY_ENV}" LABELS "${labels}"
                       TIMEOUT 1200 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE) # resume under ASan: 14.7 min at load 10
endforeach()
