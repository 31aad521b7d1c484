# Installation: the binaries, the systemd unit, the udev rule, the empty
# maps.d directory, the bash completion and (target `man`) the man pages.
#
# Paths that end up inside installed files (the unit's ExecStart=) are
# worked out when `cmake --install` runs, not at configure time, so that
# `cmake --install build/release --prefix /usr` (tools/package.sh) writes a
# unit naming /usr/sbin/ubdmd although the tree was configured for
# /usr/local.
include(GNUInstallDirs)

install(TARGETS ubdmd ubdmsetup DESTINATION ${CMAKE_INSTALL_SBINDIR})

# The unit, from its template. UBDM_INSTALL_SBINDIR and UBDM_INSTALL_SYSCONFDIR
# are set at install time (cmake/InstallPaths.cmake), then the filled-in copy
# is installed like any other file.
install(CODE "
  set(UBDM_SBINDIR_REL \"${CMAKE_INSTALL_SBINDIR}\")
  set(UBDM_SYSCONFDIR_REL \"${CMAKE_INSTALL_SYSCONFDIR}\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/InstallPaths.cmake\")
  configure_file(\"${PROJECT_SOURCE_DIR}/src/daemon/ubdmd.service.in\"
                 \"${PROJECT_BINARY_DIR}/install/ubdmd.service\" @ONLY)
  # maps.d starts empty: the administrator's NAME.table files go there.
  message(STATUS \"Installing: \$ENV{DESTDIR}\${UBDM_INSTALL_SYSCONFDIR}/ubdm/maps.d/\")
  file(MAKE_DIRECTORY \"\$ENV{DESTDIR}\${UBDM_INSTALL_SYSCONFDIR}/ubdm/maps.d\")
")
# The unit and rules directories under the prefix (PREFIX/lib/..., not
# CMAKE_INSTALL_LIBDIR: systemd and udev look in lib/ whatever the
# multiarch libdir is). Relative, so --prefix at install time applies.
install(FILES ${PROJECT_BINARY_DIR}/install/ubdmd.service DESTINATION lib/systemd/system)
install(FILES src/daemon/99-ubdm.rules DESTINATION lib/udev/rules.d)
install(FILES packaging/bash-completion/ubdmsetup
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

# Man pages: help2man over the freshly built binaries, so a page says what
# --help says. Not part of `all` (help2man is a packaging tool, not a build
# dependency); `cmake --build DIR -t man` makes them, and `cmake --install`
# installs them when they exist. Without help2man the target fails saying so
# (make-man.sh looks for it when it runs: nothing is cached at configure).
set(UBDM_MAN_DIR ${PROJECT_BINARY_DIR}/man)
add_custom_target(man
  COMMAND ${PROJECT_SOURCE_DIR}/packaging/man/make-man.sh
          $<TARGET_FILE:ubdmd> $<TARGET_FILE:ubdmsetup> ${PROJECT_VERSION} ${UBDM_MAN_DIR}
  COMMENT "help2man: ubdmd.8, ubdmsetup.8"
  VERBATIM)
add_dependencies(man ubdmd ubdmsetup)
install(FILES ${UBDM_MAN_DIR}/ubdmd.8 ${UBDM_MAN_DIR}/ubdmsetup.8
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 OPTIONAL)
