# libqtomo-client must not depend on the numerics: an acquisition program that links it should
# not pull in OpenBLAS, LAPACK(E), gfortran or xxhash (issue 14, item 8). Run as
#   cmake -DSHARED=<libqtomo-client.so> -DSTATIC=<libqtomo-client.a> -DOBJDUMP=<objdump>
#         -DNM=<nm> -P check_client_deps.cmake
# It fails when the shared library's NEEDED entries name one of those libraries, or when either
# library refers to a BLAS, LAPACK(E) or xxhash symbol (the static archive's users link only
# what libqtomo-client.pc lists).
set(banned "blas|lapack|gfortran|xxhash")

execute_process(COMMAND ${OBJDUMP} -p ${SHARED} OUTPUT_VARIABLE dyn RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "objdump -p ${SHARED} failed (${rc})")
endif()
string(REGEX MATCHALL "NEEDED[ \t]+[^ \t\r\n]+" needed "${dyn}")
if(NOT needed)
  message(FATAL_ERROR "no NEEDED entries in ${SHARED}: not a shared library?")
endif()
message(STATUS "${SHARED}: ${needed}")
foreach(n IN LISTS needed)
  string(TOLOWER "${n}" lower)
  if(lower MATCHES "${banned}")
    message(FATAL_ERROR "libqtomo-client depends on the numerics: ${n}")
  endif()
endforeach()

foreach(lib IN ITEMS ${SHARED} ${STATIC})
  execute_process(COMMAND ${NM} -u ${lib} OUTPUT_VARIABLE undef RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm -u ${lib} failed (${rc})")
  endif()
  string(REGEX MATCHALL "[ \t]U[ \t]+(cblas_|LAPACKE_|XXH|openblas_|[sdcz](gemm|heev|gesvd|syev)_?)[^ \t\r\n]*"
         bad "${undef}")
  if(bad)
    message(FATAL_ERROR "${lib} refers to numerics symbols: ${bad}")
  endif()
endforeach()
