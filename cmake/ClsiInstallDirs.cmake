# Where `cmake --install` and the .deb put things (issue 13). Included by the
# top-level CMakeLists.txt before any subdirectory, so every install() rule
# sees the same layout. docs/deployment.md has the table ("The installed
# layout").
#
# Destinations are relative to the prefix, so `cmake --install BUILD
# --prefix DIR` relocates them. The exception is GNUInstallDirs' own: with
# the prefix /usr the configuration goes to /etc, as Debian expects (and the
# store the package's postinst creates is in /var/lib).
set(CLSI_PACKAGE_NAME clsi-python-venv)

# share/doc/clsi-python-venv rather than GNUInstallDirs' default, which
# would use the CMake project's name (clsi_python_venv): Debian requires the
# package's own name there.
# (A normal variable: GNUInstallDirs keeps one that is set, and a value given
# with -DCMAKE_INSTALL_DOCDIR= wins over it.)
if(NOT CMAKE_INSTALL_DOCDIR)
  set(CMAKE_INSTALL_DOCDIR "share/doc/${CLSI_PACKAGE_NAME}")
endif()
include(GNUInstallDirs)

# Plugins are dlopen()ed by path (clsi-runner --plugin, the CLSI's plugin
# list), never found by the dynamic linker, so they live in a directory of
# their own, as Debian does for other programs' plugins.
set(CLSI_INSTALL_PLUGINDIR "${CMAKE_INSTALL_LIBDIR}/clsi/plugins" CACHE PATH
  "Where the python-venv plugin (clsi_python_venv.so) is installed")
# The example project, its packages' sources and the tools that build an
# index and render without Quarto: data a compile can be tried with, so not
# under the documentation (which minimal images leave out).
set(CLSI_INSTALL_EXAMPLESDIR "${CMAKE_INSTALL_DATADIR}/${CLSI_PACKAGE_NAME}/examples" CACHE PATH
  "The installed example project and tools")
# systemd searches <prefix>/lib/systemd/system for /usr and /usr/local alike.
set(CLSI_INSTALL_SYSTEMDUNITDIR "lib/systemd/system" CACHE PATH
  "Where the systemd unit clsi-venvs.service is installed")

# The configuration (plugin.yaml, in clsi/ under it): decided at install
# time, by cmake/ClsiSysconfdir.cmake, from the prefix installed to.
set(CLSI_SYSCONFDIR_SETTING "${CMAKE_INSTALL_SYSCONFDIR}")
