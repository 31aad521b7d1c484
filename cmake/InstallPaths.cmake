# Included by the install script (cmake/Install.cmake) when `cmake --install`
# runs: the absolute sbin and sysconf directories for the prefix given then,
# by GNUInstallDirs' rules (/usr and / keep their configuration in /etc,
# /opt/PKG in /etc/opt/PKG), except that /usr/local uses /etc too: ubdmd's
# own default, and where the README sends operators. In: CMAKE_INSTALL_PREFIX, UBDM_SBINDIR_REL,
# UBDM_SYSCONFDIR_REL (as configured; absolute ones are kept). Out:
# UBDM_INSTALL_SBINDIR, UBDM_INSTALL_SYSCONFDIR (no DESTDIR: these are the
# paths on the installed system).
if(IS_ABSOLUTE "${UBDM_SBINDIR_REL}")
  set(UBDM_INSTALL_SBINDIR "${UBDM_SBINDIR_REL}")
else()
  set(UBDM_INSTALL_SBINDIR "${CMAKE_INSTALL_PREFIX}/${UBDM_SBINDIR_REL}")
endif()

if(IS_ABSOLUTE "${UBDM_SYSCONFDIR_REL}")
  set(UBDM_INSTALL_SYSCONFDIR "${UBDM_SYSCONFDIR_REL}")
elseif(UBDM_SYSCONFDIR_REL STREQUAL "etc" AND CMAKE_INSTALL_PREFIX MATCHES "^/(usr/?|usr/local/?)?$")
  set(UBDM_INSTALL_SYSCONFDIR "/etc")
elseif(UBDM_SYSCONFDIR_REL STREQUAL "etc" AND CMAKE_INSTALL_PREFIX MATCHES "^/opt/")
  set(UBDM_INSTALL_SYSCONFDIR "/etc${CMAKE_INSTALL_PREFIX}")
else()
  set(UBDM_INSTALL_SYSCONFDIR "${CMAKE_INSTALL_PREFIX}/${UBDM_SYSCONFDIR_REL}")
endif()
string(REGEX REPLACE "/+$" "" UBDM_INSTALL_SYSCONFDIR "${UBDM_INSTALL_SYSCONFDIR}")
string(REGEX REPLACE "//+" "/" UBDM_INSTALL_SBINDIR "${UBDM_INSTALL_SBINDIR}")
string(REGEX REPLACE "//+" "/" UBDM_INSTALL_SYSCONFDIR "${UBDM_INSTALL_SYSCONFDIR}")
