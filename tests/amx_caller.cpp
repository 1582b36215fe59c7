// A caller's own AMX use (as llama.cpp's ggml keeps tiles configured across calls): configure
// tiles, multiply one 16x64 by 64x16 int8 block. Compiled with AMX flags; run only where the CPU
// has AMX (test_linear's Linear.CallersOwnTilesWorkAfterReconfiguring).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace amx_caller {

// Palette 1: tile 0 = C (16 rows x 16 int32), tiles 1, 2 = A, B (16 rows x 64 bytes).
void configure() {
  alignas(64) uint8_t cfg[64] = {};
  cfg[0] = 1;  // palette
  for (int t = 0; t < 3; ++t) {
    const uint16_t colsb = 64;
    std::memcpy(cfg + 16 + 2 * t, &colsb, 2);
    cfg[48 + t] = 16;  // rows
  }
  _tile_loadconfig(cfg);
}

// c[16][16] = a[16][64] . b, with b in VNNI order: b_vnni[k / 4][4 * j + k % 4] = b[k][j].
void product(const int8_t* a, const int8_t* b_vnni, int32_t* c) {
  _tile_loadd(1, a, 64);
  _tile_loadd(2, b_vnni, 64);
  _tile_zero(0);
  _tile_dpbssd(0, 1, 2);
  _tile_stored(0, c, 64);
}

void release() { _tile_release(); }

}  // namespace amx_caller
