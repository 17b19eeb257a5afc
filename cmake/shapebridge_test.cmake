# shapebridge_test(NAME LABEL SOURCES ... LIBS ... [DISCOVER] [TIMEOUT s]): one GoogleTest binary
# with the given tier label (unit, golden, integration, property). DISCOVER registers every test
# case with ctest; without it the binary is one ctest entry, so integration tests share one
# throwaway Postgres per process. A skipped test fails: a test that did not run is not a pass
# (gtest_discover_tests would report it as skipped, which ctest does not count as a failure).
function(shapebridge_test name label)
  cmake_parse_arguments(ARG "DISCOVER" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(ARG_DISCOVER)
    gtest_discover_tests(${name} PROPERTIES LABELS ${label} TIMEOUT ${ARG_TIMEOUT}
                         SKIP_REGULAR_EXPRESSION "^a test binary never prints this$"
                         FAIL_REGULAR_EXPRESSION "\\[  SKIPPED \\]"
                         DISCOVERY_TIMEOUT 60)
  else()
    add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
    set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT ${ARG_TIMEOUT}
                         FAIL_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
  endif()
endfunction()
