# ISA translation units. Each gets its own flags and nothing else does; the library's other
# files stay at the architecture baseline so the binary runs on any x86-64 or aarch64 CPU.
# The kernel registry (src/common/registry.hpp, namespace needs) states the same sets.
#   baseline     SSE2 (x86-64) or NEON (aarch64): always present
#   avx2         AVX2 + FMA + F16C (Haswell, Zen 1 and later)
#   avx2_vnni    avx2 + AVX-VNNI (Alder Lake, Sapphire Rapids, Zen 5)
#   avx512       AVX-512 F/BW/VL/DQ (Skylake-SP, Zen 4 and later)
#   avx512_vnni  avx512 + AVX512-VNNI (Cascade Lake, Ice Lake, Zen 4 and later)
#   avx512_bf16  avx512 + AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and later)
#   amx          avx512 + VNNI + BF16 + AMX tiles, int8 and bf16 (Sapphire Rapids and later)
set(PAGEDINFER_FLAGS_avx2 -mavx2 -mfma -mf16c)
set(PAGEDINFER_FLAGS_avx2_vnni ${PAGEDINFER_FLAGS_avx2} -mavxvnni)
# -Wno-(maybe-)uninitialized: GCC 12 false positives inside its own avx512fintrin.h, whose
# intrinsics start from _mm512_undefined_*() (GCC bug 105593, fixed in GCC 13).
set(PAGEDINFER_FLAGS_avx512 -Wno-maybe-uninitialized -Wno-uninitialized -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c)
set(PAGEDINFER_FLAGS_avx512_vnni ${PAGEDINFER_FLAGS_avx512} -mavx512vnni)
set(PAGEDINFER_FLAGS_avx512_bf16 ${PAGEDINFER_FLAGS_avx512} -mavx512bf16)
set(PAGEDINFER_FLAGS_amx ${PAGEDINFER_FLAGS_avx512} -mavx512vnni -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16)

# Adds src/<op>/<isa>.cpp for every ISA of this architecture that the op provides.
function(pagedinfer_add_isa_sources target op)
  if(PAGEDINFER_X86)
    set(isas x86_baseline x86_avx2 x86_avx2_vnni x86_avx512 x86_avx512_vnni x86_avx512_bf16 x86_amx)
  else()
    set(isas arm_neon)
  endif()
  foreach(isa IN LISTS isas)
    set(file ${CMAKE_CURRENT_SOURCE_DIR}/src/${op}/${isa}.cpp)
    if(NOT EXISTS ${file})
      continue()
    endif()
    string(REGEX REPLACE "^(x86_|arm_)" "" level ${isa})
    target_sources(${target} PRIVATE ${file})
    if(DEFINED PAGEDINFER_FLAGS_${level})
      set_source_files_properties(${file} PROPERTIES COMPILE_OPTIONS "${PAGEDINFER_FLAGS_${level}}")
    endif()
  endforeach()
endfunction()
