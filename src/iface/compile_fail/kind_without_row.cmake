# The codec is exhaustive: a parameter kind added to ParamKind without its Codec row must not
# compile. Copies codec.h with one more enumerator into an include overlay (WORK), then expects
# a file that includes it to fail for the missing row (expect_fail.cmake).
file(READ ${INC}/ward/iface/codec.h codec)
string(REPLACE "  services,  // pointer to a host service table\n  count_"
               "  services,  // pointer to a host service table\n  without_a_row,\n  count_" patched "${codec}")
if(patched STREQUAL codec)
  message(FATAL_ERROR "could not add an enumerator to ParamKind: update this test with codec.h")
endif()
file(WRITE ${WORK}/ward/iface/codec.h "${patched}")
set(SRC ${WORK}/uses_codec.cc)
file(WRITE ${SRC} "// expect: Codec<ward::detail::ParamKind::without_a_row>\n#include \"ward/iface/codec.h\"\n")
set(OVERLAY ${WORK})
include(${CMAKE_CURRENT_LIST_DIR}/expect_fail.cmake)
