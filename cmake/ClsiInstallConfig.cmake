# Installs the configuration (plugin.yaml) and the systemd unit, with the
# installed paths written into the unit. Runs at install time (install(CODE)
# in ClsiPackage.cmake), so that the paths are those of the prefix really
# installed to, also with `cmake --install BUILD --prefix DIR`; file(INSTALL)
# adds DESTDIR itself.
#
# In: CLSI_SOURCE_DIR, CLSI_STAGE_DIR (a directory of the build tree),
# CLSI_BINDIR and CLSI_UNITDIR (relative to the prefix, or absolute),
# CLSI_SYSCONFDIR_SETTING (CMAKE_INSTALL_SYSCONFDIR).
include("${CMAKE_CURRENT_LIST_DIR}/ClsiSysconfdir.cmake")
clsi_sysconfdir("${CMAKE_INSTALL_PREFIX}" _confdir)
foreach(_var CLSI_BINDIR CLSI_UNITDIR)
  if(IS_ABSOLUTE "${${_var}}")
    set(_${_var} "${${_var}}")
  else()
    set(_${_var} "${CMAKE_INSTALL_PREFIX}/${${_var}}")
  endif()
endforeach()

# Owned by root, readable by the service and the compile host, writable by
# neither (docs/deployment.md, the checklist).
file(INSTALL DESTINATION "${_confdir}" TYPE FILE
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
  FILES "${CLSI_SOURCE_DIR}/plugin.yaml")

# The example unit names the paths of a manual install
# (examples/systemd/README.md): /usr/local/bin/clsi-venvs, /etc/clsi/plugin.yaml.
set(_source "${CLSI_SOURCE_DIR}/examples/systemd/clsi-venvs.service")
file(READ "${_source}" _unit)
foreach(_expected "ExecStart=/usr/local/bin/clsi-venvs " "--config /etc/clsi/plugin.yaml")
  string(FIND "${_unit}" "${_expected}" _at)
  if(_at EQUAL -1)
    message(FATAL_ERROR "${_source} no longer contains '${_expected}'; "
      "update cmake/ClsiInstallConfig.cmake, which rewrites it to the installed paths")
  endif()
endforeach()
string(REPLACE "ExecStart=/usr/local/bin/clsi-venvs "
  "ExecStart=${_CLSI_BINDIR}/clsi-venvs " _unit "${_unit}")
string(REPLACE "--config /etc/clsi/plugin.yaml" "--config ${_confdir}/plugin.yaml"
  _unit "${_unit}")
file(WRITE "${CLSI_STAGE_DIR}/clsi-venvs.service" "${_unit}")
file(INSTALL DESTINATION "${_CLSI_UNITDIR}" TYPE FILE
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
  FILES "${CLSI_STAGE_DIR}/clsi-venvs.service")
