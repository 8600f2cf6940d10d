# The codec is exhaustive: a parameter kind added to ParamKind without its Codec row must not
# compile. Copies codec.h with one more enumerator into an include overlay (WORK), compiles a
# file that includes it, and succeeds only if that fails because the row is missing.
file(READ ${INC}/ward/iface/codec.h codec)
string(REPLACE "  services,  // pointer to a host service table\n  count_"
               "  services,  // pointer to a host service table\n  without_a_row,\n  count_" patched "${codec}")
if(patched STREQUAL codec)
  message(FATAL_ERROR "could not add an enumerator to ParamKind: update this test with codec.h")
endif()
file(WRITE ${WORK}/ward/iface/codec.h "${patched}")
file(WRITE ${WORK}/uses_codec.cc "#include \"ward/iface/codec.h\"\n")
execute_process(COMMAND ${CXX} -std=c++2b -fsyntax-only -I${WORK} -I${INC} ${WORK}/uses_codec.cc
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "a ParamKind without a Codec row compiled, but it must not")
endif()
string(FIND "${err}" "Codec<ward::detail::ParamKind::without_a_row>" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "failed to compile, but not for the missing row:\n${err}")
endif()
message(STATUS "rejected as expected: a kind without a codec row")
