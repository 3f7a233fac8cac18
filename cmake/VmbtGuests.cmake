# vmbt_add_guests(TARGET name SOURCES a.S b.S ... OUTPUT_DIR dir LINKER_SCRIPT file.ld
#                 [INCLUDE_DIRS dir ...] [DEPENDS file ...] [COMMENT text])
#
# Guest programs: each NAME.S is assembled as 32-bit code (gcc -m32, freestanding) and linked
# with `ld -m elf_i386` and the linker script into OUTPUT_DIR/NAME.elf, a Multiboot v1 ELF that
# `vmbt run --kernel` (and QEMU's -kernel) boots. TARGET (built by default) builds them all.
# DEPENDS: the headers (.inc) the sources include, so a change to one reassembles them.
# The one rule for tests/guests, bench/micro and bench/paging.
function(vmbt_add_guests)
  cmake_parse_arguments(G "" "TARGET;OUTPUT_DIR;LINKER_SCRIPT;COMMENT"
                        "SOURCES;INCLUDE_DIRS;DEPENDS" ${ARGN})
  if(NOT G_COMMENT)
    set(G_COMMENT "Assembling guest")
  endif()
  file(MAKE_DIRECTORY ${G_OUTPUT_DIR})
  set(includes)
  foreach(dir ${G_INCLUDE_DIRS})
    list(APPEND includes -I${dir})
  endforeach()
  set(elfs)
  foreach(src ${G_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    set(obj ${G_OUTPUT_DIR}/${name}.o)
    set(elf ${G_OUTPUT_DIR}/${name}.elf)
    add_custom_command(OUTPUT ${elf}
      COMMAND ${CMAKE_C_COMPILER} -m32 -c -nostdlib -ffreestanding ${includes} -o ${obj} ${src}
      COMMAND ld -m elf_i386 -nostdlib -T ${G_LINKER_SCRIPT} -o ${elf} ${obj}
      DEPENDS ${src} ${G_LINKER_SCRIPT} ${G_DEPENDS}
      COMMENT "${G_COMMENT} ${name}")
    list(APPEND elfs ${elf})
  endforeach()
  add_custom_target(${G_TARGET} ALL DEPENDS ${elfs})
endfunction()
