# Writes the commented default /etc/qtomo/qtomod.conf from `qtomod --help` (the option table),
# so the file lists every key with its default and cannot drift from the program.
#   cmake -DQTOMOD=path/to/qtomod -DOUT=qtomod.conf -P gen-conf.cmake
execute_process(COMMAND ${QTOMOD} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${QTOMOD} --help failed (${rc})")
endif()
set(text "\
# /etc/qtomo/qtomod.conf: configuration of qtomod, the qtomo reconstruction daemon.
#
# One 'key = value' per line; '#' starts a comment. Every key is listed below, commented out,
# with its default. See qtomod.conf(5); 'qtomod --dump-config' prints the effective values.
# 'systemctl reload qtomod' applies a change (an invalid file fails the reload and the old
# configuration stays); socket and cache-dir need 'systemctl restart qtomod'.
#
# Under systemd the socket is the one qtomod.socket creates (/run/qtomo/qtomod.sock, group
# qtomo) and the cache is /var/cache/qtomo (qtomod.service). Only root, the daemon's user and
# members of admin-group may reload the daemon or evict its cache.
")
# Semicolons in the descriptions would split the CMake list: park them, split, restore.
string(REPLACE ";" "<semicolon>" help "${help}")
string(REPLACE "\n" ";" lines "${help}")
set(n 0)
set(in_options OFF)
foreach(line IN LISTS lines)
  string(REPLACE "<semicolon>" ";" line "${line}")
  if(line MATCHES "^Options")
    set(in_options ON)
  elseif(in_options AND line MATCHES "^  --([a-z0-9-]+) [A-Z]+ +(.*)$")
    set(key "${CMAKE_MATCH_1}")
    set(desc "${CMAKE_MATCH_2}")
    if(desc MATCHES "^(.*) \\[([^]]*)\\]$")
      string(APPEND text "\n# ${CMAKE_MATCH_1}\n#${key} = ${CMAKE_MATCH_2}\n")
    else()
      string(APPEND text "\n# ${desc}\n#${key} =\n")
    endif()
    math(EXPR n "${n} + 1")
  endif()
endforeach()
if(n LESS 10)
  message(FATAL_ERROR "only ${n} options found in the output of ${QTOMOD} --help")
endif()
file(WRITE ${OUT} "${text}")
