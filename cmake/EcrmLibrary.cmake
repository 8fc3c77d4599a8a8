# ecrm_library(NAME <name> SRCS <files...> DEPS <targets...>)
# Declares one static library per module with the project's warnings and root-relative includes.
# The DEPS graph is the layering: app -> api -> ingest -> profiler -> {rules, store} -> common.
function(ecrm_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(ecrm_${ARG_NAME} STATIC ${ARG_SRCS})
  target_include_directories(ecrm_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(ecrm_${ARG_NAME} PUBLIC ${ARG_DEPS})
  ecrm_set_warnings(ecrm_${ARG_NAME})
endfunction()

function(ecrm_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic $<$<BOOL:${ECRM_WERROR}>:-Werror>
    -Wno-missing-field-initializers
    # GCC 12 reports false -Wrestrict positives on std::string concatenation (GCC bug 105329).
    $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>)
endfunction()

# ecrm_test(NAME <name> SRCS <files...> DEPS <targets...> [LABELS ...])
function(ecrm_test)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  ecrm_set_warnings(${ARG_NAME})
  gtest_discover_tests(${ARG_NAME} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "unit;${ARG_LABELS}")
endfunction()
