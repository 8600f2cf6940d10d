# Compiles SRC and succeeds only if compilation fails with the message named on SRC's
# "// expect: ..." line (so the test cannot pass because of an unrelated error). OVERLAY, if
# set, is an include directory searched before INC (a patched copy of a ward header).
file(STRINGS ${SRC} expect_line REGEX "^// expect: ")
string(REGEX REPLACE "^// expect: " "" expected "${expect_line}")
if(expected STREQUAL "")
  message(FATAL_ERROR "${SRC} has no '// expect:' line")
endif()
set(overlay "")
if(OVERLAY)
  set(overlay -I${OVERLAY})
endif()
execute_process(COMMAND ${CXX} -std=c++2b -fsyntax-only ${overlay} -I${INC} ${SRC}
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SRC} compiled, but it must not")
endif()
string(FIND "${err}" "${expected}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "${SRC} failed to compile, but without the expected message '${expected}':\n${err}")
endif()
message(STATUS "rejected as expected: ${expected}")
