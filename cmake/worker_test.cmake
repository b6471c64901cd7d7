# worker_add_test(NAME SOURCES a.cpp ... LIBS lib ... LABELS unit|oracle|gpu|slow ... [TIMEOUT s])
# One Catch2 executable registered as ONE CTest test carrying the given labels (labels come from
# here, not from Catch2 tags). Exit code 77 means SKIPPED (used by GPU tests without a usable GPU).
set(WORKER_ORCD_SKIP_CODE 77)
add_library(worker_catch_main STATIC ${CMAKE_CURRENT_LIST_DIR}/catch_main.cpp)
target_link_libraries(worker_catch_main PUBLIC Catch2::Catch2)

function(worker_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE worker_catch_main ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
                       SKIP_RETURN_CODE ${WORKER_ORCD_SKIP_CODE})
endfunction()
