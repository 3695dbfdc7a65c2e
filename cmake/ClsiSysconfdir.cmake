# clsi_sysconfdir(PREFIX OUT_VAR): where the configuration (plugin.yaml) goes
# for an install to PREFIX, by GNUInstallDirs' rule: /usr and / -> /etc,
# /opt/X -> /etc/opt/X, anything else -> PREFIX/etc; an absolute
# CMAKE_INSTALL_SYSCONFDIR as it is. Used at configure time (the .deb's
# conffiles) and at install time (cmake/ClsiInstallConfig.cmake), so that
# `cmake --install BUILD --prefix DIR` never writes outside DIR unless DIR
# is /usr.
function(clsi_sysconfdir prefix out_var)
  string(REGEX REPLACE "/+$" "" prefix "${prefix}")
  if(IS_ABSOLUTE "${CLSI_SYSCONFDIR_SETTING}")
    set(_dir "${CLSI_SYSCONFDIR_SETTING}")
  elseif(prefix STREQUAL "/usr" OR prefix STREQUAL "")
    set(_dir "/${CLSI_SYSCONFDIR_SETTING}")
  elseif(prefix MATCHES "^/opt/")
    set(_dir "/${CLSI_SYSCONFDIR_SETTING}${prefix}")
  else()
    set(_dir "${prefix}/${CLSI_SYSCONFDIR_SETTING}")
  endif()
  set(${out_var} "${_dir}/clsi" PARENT_SCOPE)
endfunction()
