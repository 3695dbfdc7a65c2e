# Install rules for what is not a target, and the Debian package (issue 13).
# The targets' own rules are in plugin/CMakeLists.txt (the plugin,
# clsi-venvs) and host-api/ (the SDK and clsi-runner); the layout is in
# cmake/ClsiInstallDirs.cmake. Components: runtime (the service, the plugin,
# its configuration and unit, the example), sdk (host-api/), doc.
#
#   packaging/build-deb.sh BUILD_DIR     configure for /usr, build, cpack -G DEB
#   scripts/test-package.sh              that, then install it and run a compile

# The configuration, shared by the service and the compile host (etc/clsi,
# /etc/clsi for the prefix /usr; in the .deb a conffile: the operator edits
# it in place and upgrades keep the edits), and the build service's unit,
# with the installed paths written into it.
install(CODE "
  set(CLSI_SOURCE_DIR \"${CMAKE_CURRENT_SOURCE_DIR}\")
  set(CLSI_STAGE_DIR \"${CMAKE_CURRENT_BINARY_DIR}/packaging\")
  set(CLSI_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(CLSI_UNITDIR \"${CLSI_INSTALL_SYSTEMDUNITDIR}\")
  set(CLSI_SYSCONFDIR_SETTING \"${CLSI_SYSCONFDIR_SETTING}\")
  include(\"${CMAKE_CURRENT_SOURCE_DIR}/cmake/ClsiInstallConfig.cmake\")
" COMPONENT runtime)

# The example: enough to try a compile from the installed files alone
# (README.md, "Installing the package"; scripts/test-package.sh does it).
install(DIRECTORY examples/project examples/packages
  DESTINATION ${CLSI_INSTALL_EXAMPLESDIR} COMPONENT runtime
  PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE)
install(FILES examples/plugin.yaml examples/README.md
  DESTINATION ${CLSI_INSTALL_EXAMPLESDIR} COMPONENT runtime)
install(FILES examples/tools/kernel_driver.py examples/tools/mkindex.py
  DESTINATION ${CLSI_INSTALL_EXAMPLESDIR}/tools COMPONENT runtime)
install(PROGRAMS examples/tools/quarto-standin examples/tools/serve_index.py
  DESTINATION ${CLSI_INSTALL_EXAMPLESDIR}/tools COMPONENT runtime)

# The docs, laid out as in the repository so that their relative links hold.
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT doc)
file(GLOB _clsi_docs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/docs/*.md)
install(FILES ${_clsi_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs COMPONENT doc)
# (The unit itself is installed with the real paths, above.)
install(FILES examples/systemd/README.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/systemd COMPONENT doc)
install(DIRECTORY examples/k8s DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT doc)

# Files installed gzip -9n compressed (man pages; Debian's changelog), made
# in the build tree: clsi_gzip(SOURCE OUTPUT_VARIABLE).
find_program(CLSI_GZIP gzip REQUIRED)
set(_clsi_gzipped)
function(clsi_gzip source out_var)
  get_filename_component(_name "${source}" NAME)
  set(_out "${CMAKE_CURRENT_BINARY_DIR}/packaging/${_name}.gz")
  add_custom_command(OUTPUT "${_out}"
    COMMAND "${CLSI_GZIP}" -9nc "${source}" > "${_out}"
    DEPENDS "${source}" VERBATIM)
  set(_clsi_gzipped ${_clsi_gzipped} "${_out}" PARENT_SCOPE)
  set(${out_var} "${_out}" PARENT_SCOPE)
endfunction()

clsi_gzip(${CMAKE_CURRENT_SOURCE_DIR}/packaging/man/clsi-venvs.8 _clsi_man8)
clsi_gzip(${CMAKE_CURRENT_SOURCE_DIR}/packaging/man/clsi-runner.1 _clsi_man1)
install(FILES ${_clsi_man8} DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT doc)
install(FILES ${_clsi_man1} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT doc)

# ---- The Debian package --------------------------------------------------
set(CLSI_DEB_MAINTAINER "Seed 417367df maintainers <maintainers@users.noreply.r-seed-417367df.example>"
  CACHE STRING "The Maintainer field of the .deb")
set(CLSI_DEB_RELEASE 1 CACHE STRING "The Debian revision of the .deb (VERSION-RELEASE)")
set(_clsi_deb_version "${PROJECT_VERSION}-${CLSI_DEB_RELEASE}")

# Debian wants the copyright and a Debian changelog in the package's doc
# directory. Only for a /usr prefix, the one a .deb is built with
# (packaging/build-deb.sh): other installs are not Debian's business.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_clsi_deb_docs_default ON)
else()
  set(_clsi_deb_docs_default OFF)
endif()
option(CLSI_INSTALL_DEBIAN_DOCS "Install the Debian copyright and changelog.Debian.gz"
  ${_clsi_deb_docs_default})
if(CLSI_INSTALL_DEBIAN_DOCS)
  string(TIMESTAMP CLSI_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)  # honours SOURCE_DATE_EPOCH
  set(CLSI_DEB_VERSION "${_clsi_deb_version}")
  configure_file(packaging/debian/changelog.in ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.Debian
    @ONLY)
  clsi_gzip(${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.Debian _clsi_changelog)
  install(FILES packaging/debian/copyright ${_clsi_changelog}
    DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT doc)
endif()
add_custom_target(clsi_gzipped_docs ALL DEPENDS ${_clsi_gzipped})

# conffiles: dpkg keeps an operator's edits of these across upgrades.
include(cmake/ClsiSysconfdir.cmake)
clsi_sysconfdir("${CMAKE_INSTALL_PREFIX}" _clsi_confdir)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/packaging/conffiles "${_clsi_confdir}/plugin.yaml\n")

set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR "")
set(CPACK_PACKAGE_NAME ${CLSI_PACKAGE_NAME})
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${CLSI_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "per-project Python venvs for Quarto renders in Overleaf's CLSI")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"A runner plugin for the compile service (CLSI) of Overleaf. Before a Quarto
render it reads the project's requirements.txt by allowlist, reuses a cached
virtual environment for exactly those requirements or asks its build service
to build one from the one configured package index, and points Quarto at it
(QUARTO_PYTHON, JUPYTER_PATH). A compile never fails because of it: at worst
the render runs on the base interpreter and output.log says why.

This package holds the plugin, the build service and admin command clsi-venvs
with its systemd unit (not enabled: configure /etc/clsi/plugin.yaml first),
the reference host clsi-runner, an example project, and the SDK for further
plugins (headers, static libraries, test kit, CMake package).")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
# /etc/clsi is an absolute destination: install into the staging tree
# through DESTDIR, never into this machine's /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # clsi-python-venv_VERSION-RELEASE_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE ${CLSI_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CLSI_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The libraries the programs link (libc, libstdc++, yaml-cpp, OpenSSL,
# libzip) come from dpkg-shlibdeps; the rest is what the code runs:
# the base interpreter with venv and pip (the service runs
# `python3 -I -m venv --system-site-packages` and the venv's pip, which is the
# base's), ipykernel (every venv's kernelspec runs `python3 -m
# ipykernel_launcher`), and the Jupyter stack Quarto's engine (and the
# example's stand-in) imports through QUARTO_PYTHON, which the venvs inherit
# from the base interpreter; useradd for the service's user (postinst).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "python3, python3-venv, python3-pip, python3-ipykernel, python3-nbclient, python3-nbformat, python3-jupyter-client, python3-jupyter-core, passwd")
# For building plugins with the SDK (find_package(clsi), its test kit).
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "cmake, g++")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/debian/postinst
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/debian/prerm
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/debian/postrm
  ${CMAKE_CURRENT_BINARY_DIR}/packaging/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
