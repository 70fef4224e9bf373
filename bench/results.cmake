# Results files (HDF5): il_run_info helpers, the parallel HDF5 writer and the
# serial merge. Included from bench/CMakeLists.txt with include(results.cmake).
# Schema: analysis/SCHEMA.md.
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(MPI REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR "ilbench results need parallel HDF5 (Debian: libhdf5-openmpi-dev); found a serial HDF5 ${HDF5_VERSION}")
endif()

add_library(ilbench_results STATIC
  ${CMAKE_CURRENT_LIST_DIR}/results.c
  ${CMAKE_CURRENT_LIST_DIR}/results_h5.c
  ${CMAKE_CURRENT_LIST_DIR}/results_lock.c
  ${CMAKE_CURRENT_LIST_DIR}/results_resume.c
  ${CMAKE_CURRENT_LIST_DIR}/results_merge.c)
target_include_directories(ilbench_results PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(ilbench_results PUBLIC ilcore MPI::MPI_C HDF5::HDF5)
if(NOT IL_GIT_DESCRIBE)
  set(IL_GIT_DESCRIBE "unknown")
endif()
target_compile_definitions(ilbench_results PRIVATE ILBENCH_GIT="${IL_GIT_DESCRIBE}")
