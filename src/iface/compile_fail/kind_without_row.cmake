# The codec is exhaustive: a parameter kind added to ParamKind without its Codec row must not
# compile. Copies codec.h with one more enumerator into an include overlay (WORK), then expects
# a file that includes it to fail for the missing row (expect_fail.cmake).
file(READ ${INC}/ward/iface/codec.h codec)
# ParamKind is the first enum ending in `count_` (ResultKind follows it).
string(FIND "${codec}" "enum class ParamKind" enum_at)
string(FIND "${codec}" "\n  count_\n" count_at)
if(enum_at EQUAL -1 OR count_at LESS enum_at)
  message(FATAL_ERROR "could not add an enumerator to ParamKind: update this test with codec.h")
endif()
string(SUBSTRING "${codec}" 0 ${count_at} head)
string(SUBSTRING "${codec}" ${count_at} -1 tail)
set(patched "${head}\n  without_a_row,${tail}")
file(WRITE ${WORK}/ward/iface/codec.h "${patched}")
set(SRC ${WORK}/uses_codec.cc)
file(WRITE ${SRC} "// expect: Codec<ward::detail::ParamKind::without_a_row>\n#include \"ward/iface/codec.h\"\n")
set(OVERLAY ${WORK})
include(${CMAKE_CURRENT_LIST_DIR}/expect_fail.cmake)
