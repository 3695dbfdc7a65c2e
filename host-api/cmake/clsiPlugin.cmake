# clsi_add_plugin(<target> <source>...)
#
# A plugin library the way the hosts expect one: a MODULE (dlopen'ed, never
# linked), named <target>.so (no "lib" prefix), C++ built with hidden
# visibility, and linked with a version script that exports only the entry
# symbol (clsi_plugin_entry_v1) and with --no-undefined, so that a missing
# symbol is a link error instead of a dlopen refusal. Links clsi::host_api.
include_guard(GLOBAL)
if(CMAKE_VERSION VERSION_LESS 3.17)  # CMAKE_CURRENT_FUNCTION_LIST_DIR
  message(FATAL_ERROR "clsi_add_plugin needs CMake 3.17 or later")
endif()

function(clsi_add_plugin target)
  set(_clsi_plugin_exports_map "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/clsi-plugin-exports.map")
  if(NOT ARGN)
    message(FATAL_ERROR "clsi_add_plugin(${target}): no sources")
  endif()
  add_library(${target} MODULE ${ARGN})
  target_link_libraries(${target} PRIVATE clsi::host_api)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${_clsi_plugin_exports_map}")
  target_link_options(${target} PRIVATE
    "LINKER:--version-script=${_clsi_plugin_exports_map}" "LINKER:--no-undefined")
endfunction()
