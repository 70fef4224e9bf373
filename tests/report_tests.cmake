# End-to-end test of the analysis report (analysis/report.py and
# analysis/ilbench_results.py) with Debian's /usr/bin/python3 (numpy, h5py,
# matplotlib, pytest). It runs the built ilbench (a 2-rank sweep and a 1-rank
# train on data/mnist, a few seconds) and checks the figures and summary
# against the HDF5 files; those tests skip when ilbench or MNIST is missing.
# Include from tests/CMakeLists.txt with include(report_tests.cmake).
add_test(NAME analysis_report
         COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_LIST_DIR}/test_report.py)
set_tests_properties(analysis_report PROPERTIES
                     ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;HDF5_USE_FILE_LOCKING=FALSE;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ILBENCH=$<TARGET_FILE:ilbench>"
                     LABELS "analysis;e2e" TIMEOUT 300)

# --trace N end to end (tests/test_trace_table.py): short MNIST runs on one rank, two ranks and
# two threads pass check_schema, the trace table agrees with the steps table, the report draws
# convergence.png from it, bad values exit 2, a run without --trace has no table, and a killed
# run resumed ends with the uninterrupted run's table.
set(IL_TRACE_TEST_ENV "PYTHONDONTWRITEBYTECODE=1;HDF5_USE_FILE_LOCKING=FALSE;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ILBENCH=$<TARGET_FILE:ilbench>")
if(ILBENCH_SANITIZE)
  list(APPEND IL_TRACE_TEST_ENV "ASAN_OPTIONS=detect_leaks=0") # Open MPI leaks in MPI_Init (results_tests.cmake)
endif()
add_test(NAME analysis_trace
         COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_LIST_DIR}/test_trace_table.py)
set_tests_properties(analysis_trace PROPERTIES ENVIRONMENT "${IL_TRACE_TEST_ENV}" LABELS "analysis;e2e" TIMEOUT 300)
