# The codec is exhaustive: a parameter kind added to ParamKind without its Codec row must not
# compile. Copies codec.h with one more enumerator into an include overlay (WORK), then expects
# a file that includes it to fail for the missing row (expect_fail.cmake).
file(READ ${INC}/ward/iface/codec.h codec)
# (The enumerator goes before ParamKind's count_, the first `count_` line in the file.)
string(REPLACE "\n  count_\n};\n\ntemplate <class F, std::size_t I>\nconsteval ParamKind"
               "\n  without_a_row,\n  count_\n};\n\ntemplate <class F, std::size_t I>\nconsteval ParamKind" patched "${codec}")
if(patched STREQUAL codec)
  message(FATAL_ERROR "could not add an enumerator to ParamKind: update this test with codec.h")
endif()
file(WRITE ${WORK}/ward/iface/codec.h "${patched}")
set(SRC ${WORK}/uses_codec.cc)
file(WRITE ${SRC} "// expect: Codec<ward::detail::ParamKind::without_a_row>\n#include \"ward/iface/codec.h\"\n")
set(OVERLAY ${WORK})
include(${CMAKE_CURRENT_LIST_DIR}/expect_fail.cmake)
