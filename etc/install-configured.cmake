# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt): the files that name installed
# paths, filled in with the prefix of this install (--prefix), not the one cmake was
# configured with. RINGMAIL_* come from the install(CODE) just before.
foreach(dir SBIN MAN DOC)
  if(IS_ABSOLUTE "${RINGMAIL_${dir}_SUBDIR}")
    set(RINGMAIL_${dir}DIR "${RINGMAIL_${dir}_SUBDIR}")
  else()
    set(RINGMAIL_${dir}DIR "${CMAKE_INSTALL_PREFIX}/${RINGMAIL_${dir}_SUBDIR}")
  endif()
endforeach()
set(out "${RINGMAIL_BINARY_DIR}/install-configured")
configure_file("${RINGMAIL_SOURCE_DIR}/etc/ringmail.service.in" "${out}/ringmail.service" @ONLY)
configure_file("${RINGMAIL_SOURCE_DIR}/etc/ringmail-setup.in" "${out}/ringmail-setup" @ONLY)
file(INSTALL "${out}/ringmail.service"
     DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
file(INSTALL "${out}/ringmail-setup" DESTINATION "${RINGMAIL_SBINDIR}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                      WORLD_READ WORLD_EXECUTE)
