// The NHWC and flat float kernels built with -mavx2 -mfma (CMakeLists.txt): the same loops as
// the portable tables, vectorised 8 floats wide. Called only where the CPU has both.
#define DATANAS_FLOAT_TABLES avx2
#include "kernels/float_tables.inc"
