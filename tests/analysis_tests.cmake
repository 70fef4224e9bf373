# Tests of the analysis scripts (Python, Debian's /usr/bin/python3 with numpy,
# h5py and pytest). Included from tests/CMakeLists.txt with
# include(analysis_tests.cmake).
#
# analysis_check_schema: analysis/check_schema.py, the results-file validator,
# against small files built with h5py that follow analysis/SCHEMA.md and
# copies that break one rule each. Set ILBENCH_TEST_H5 to a file written by
# ilbench to also validate that file. `-p no:cacheprovider` and
# PYTHONDONTWRITEBYTECODE keep .pytest_cache and __pycache__ out of the
# source tree.
add_test(NAME analysis_check_schema
         COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_LIST_DIR}/test_check_schema.py)
set_tests_properties(analysis_check_schema PROPERTIES
                     ENVIRONMENT "HDF5_USE_FILE_LOCKING=FALSE;PYTHONDONTWRITEBYTECODE=1"
                     LABELS "analysis;results" TIMEOUT 120)
