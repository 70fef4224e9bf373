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

# One vocabulary (bench/results_columns.h): the committed analysis/schema.json
# is what `ilbench schema --json` prints, and SCHEMA.md's column tables are
# what analysis/schema_doc.py makes of it. Regenerate with
#   build/release/bench/ilbench schema --json > analysis/schema.json
#   /usr/bin/python3 analysis/schema_doc.py --write
add_test(NAME schema_json_up_to_date
         COMMAND ${IL_BASH} -c "set -o pipefail; \"$1\" schema --json | diff -u \"$2\" - || { echo 'analysis/schema.json differs from ilbench schema --json: regenerate it' >&2; exit 1; }"
                 _ $<TARGET_FILE:ilbench> ${CMAKE_SOURCE_DIR}/analysis/schema.json)
set_tests_properties(schema_json_up_to_date PROPERTIES ENVIRONMENT "${IL_RESULTS_TEST_ENV}"
                     LABELS "analysis;results" TIMEOUT 60)
add_test(NAME schema_doc_up_to_date
         COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/analysis/schema_doc.py --check)
set_tests_properties(schema_doc_up_to_date PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1"
                     LABELS "analysis" TIMEOUT 60)

# analysis/grid_figure.py (scripts/bench-grid's figure, also report.py --grid-bench) on synthetic CSVs.
add_test(NAME analysis_grid_figure
         COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_LIST_DIR}/test_grid_figure.py)
set_tests_properties(analysis_grid_figure PROPERTIES ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1" LABELS "analysis" TIMEOUT 120)
