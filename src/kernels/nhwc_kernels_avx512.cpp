// The NHWC and flat float kernels built for AVX-512 (CMakeLists.txt): the loops of the AVX2 and
// portable tables, 16 floats wide, with twice the AVX2 table's multiply-adds per cycle where the
// CPU has two 512-bit FMA units. Called only where the CPU has AVX-512 F, DQ, VL and BW.
#define DATANAS_FLOAT_TABLES avx512
#include "kernels/float_tables.inc"
