// Channels-last (NHWC) kernels behind the native ops, on raw pointers. In NHWC the C values of a
// pixel are contiguous, so every kernel's innermost loop runs over channels: plain loops that the
// compiler vectorises, built three times (for float nhwc_kernels_avx512.cpp with AVX-512 and
// nhwc_kernels_avx2.cpp with -mavx2 -mfma, chosen by cpu_capability.h; nhwc_kernels_portable.cpp
// otherwise and for double). The autograd functions split the
// work over samples (convolution, pooling) or pixel ranges (pointwise, batch norm). Like
// plane_kernels.h, nothing here uses LibTorch or standard-library templates.
#pragma once
#include <cstdint>

#include "kernels/plane_kernels.h"

namespace datanas {
namespace kernels {

// Outputs of this many bytes or more are written past the caches (pointwise_streamed): they
// would not stay there anyway, and skipping the read of every line before it is overwritten cut
// the pointwise conv's input gradient of a 64-channel 32x32 batch (16 MiB) by a fifth. At 4 MiB
// (a 16-channel batch) the cached stores won: the 1x1 conv + batch norm's forward and backward
// took 4 % less on the 2-core Xeon VM with 2 MiB of L2 per core (alternating runs).
constexpr int64_t kStreamBytes = int64_t{8} << 20;

// Per-channel sums over one sample's block output z (`outputs` values each): shift is set to z's
// first pixel; sum and sum_squares gain the sums of z - shift and its square; with a gradient g
// (laid out like z; null: none), sum_g and sum_gz gain the sums of g and of g * (z - shift).
template <typename T>
struct BlockSums {
  T* shift;
  double *sum, *sum_squares;
  const T* g = nullptr;
  double *sum_g = nullptr, *sum_gz = nullptr;
};

// One sample of the fused block's backward: x (H, W, C) its input, dw (k*k, C) tap-major, pw
// (outputs, C) the pointwise weight, z and gy (Ho, Wo, outputs) the batch norm's input and the
// output's gradient, and gz = a[o] gy + b[o] z + c0[o] the batch norm's backward map. gx is
// overwritten; gw_dw (k*k, C) and gw_pw (outputs, C) are accumulated into. Each may be null (not
// wanted), but gx not when gw_dw is wanted. in_scale / in_offset (null: none) are the forward's
// map of x (a batch norm left to the block, dw_pw_forward's); gx is then the gradient of the
// mapped x, and the conv must be a stride-1 "same" one (the gather form). Where x_mean is set (and
// gx), sum gx and sum gx (x - x_mean) per channel are added to sum_gx and sum_gx_xc: the sums a
// batch norm before the block wants (grad_sums_link.h), taken while gx is made.
template <typename T>
struct DwPwGrads {
  const T *x, *dw, *pw, *z, *gy;
  const T *a, *b, *c0;
  T *gx, *gw_dw, *gw_pw;
  const T *in_scale = nullptr, *in_offset = nullptr;
  const T* x_mean = nullptr;
  double *sum_gx = nullptr, *sum_gx_xc = nullptr;
};

// A pool followed by a training-mode batch norm: the pool's output gradient is
// a[c] gy + b[c] y + c0[c] for the batch norm's output gradient gy and its input y (the pool's
// output), made by the pool's backward as it reads gy instead of in a pass of its own.
template <typename T>
struct PoolOutputGradMap {
  const T *a, *b, *c0;
};

template <typename T>
struct NhwcKernels {
  // One sample: x (H, W, C), w (k*k, C) tap-major, y (Ho, Wo, C) = conv(relu ? relu(x) : x, w);
  // scratch holds nhwc_conv_scratch_elements(g, C).
  void (*conv_forward)(const T* x, const T* w, T* y, int64_t C, const ConvGeometry& g, bool relu,
                       T* scratch);
  // One sample: gx (H, W, C) overwritten, gw (k*k, C) accumulated into (gw null: none).
  void (*conv_backward)(const T* x, const T* w, const T* gy, T* gx, T* gw, int64_t C,
                        const ConvGeometry& g, bool relu, T* scratch);
  // One sample of 3x3 pooling with padding 1; backward overwrites gx. Max pooling sends each
  // gradient to the first maximum in row-major tap order, as LibTorch does.
  void (*max_pool_forward)(const T* x, T* y, int64_t C, const PoolGeometry& g);
  // y (may be null): the forward's output (max pooling: the windows' maxima, else found
  // again). map (may be null): gy is a batch norm's output gradient, mapped (needs y).
  void (*max_pool_backward)(const T* x, const T* y, const T* gy, const PoolOutputGradMap<T>* map,
                            T* gx, int64_t C, const PoolGeometry& g);
  void (*avg_pool_forward)(const T* x, T* y, int64_t C, const PoolGeometry& g);
  void (*avg_pool_backward)(const T* y, const T* gy, const PoolOutputGradMap<T>* map, T* gx,
                            int64_t C, const PoolGeometry& g);
  // Pixels [begin, end) of (P, inputs) x: y[p, o] = sum_i a(x[p, i]) wt[i, o] (wt inputs x
  // outputs), a = relu with relu_x, else the identity; with a gate (laid out like y), y is 0
  // where gate <= 0 (the input gradient of a conv on relu(x)).
  void (*pointwise)(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs, int64_t begin,
                    int64_t end, bool relu_x, const T* gate);
  // The same, writing y past the caches (where the target can): for a y of kStreamBytes or more.
  void (*pointwise_streamed)(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs,
                             int64_t begin, int64_t end, bool relu_x, const T* gate);
  // gw[o, i] += sum over pixels [begin, end) of gy[p, o] a(x[p, i]).
  void (*pointwise_wgrad)(const T* x, const T* gy, T* gw, int64_t inputs, int64_t outputs,
                          int64_t begin, int64_t end, bool relu_x);
  // Pixels [begin, end) of an input given as `count` channel parts (part i: channels[i] per
  // pixel, channels-last) as rows of all its channels, part after part: out[(p - begin) *
  // total + offset_i + c] = a(part_i[p, c]), a = relu with relu_x, else the identity.
  void (*gather_channels)(const T* const* parts, const int64_t* channels, int64_t count,
                          int64_t begin, int64_t end, bool relu_x, T* out);
  // One sample of the fused block relu -> depthwise (w tap-major) -> pointwise (pwt inputs x
  // outputs): z (Ho, Wo, outputs). in_scale/in_offset (null: none) first map the input to
  // x * in_scale[c] + in_offset[c], a batch norm not yet applied. The sums of `sums` are
  // accumulated; with sums.g, z may be null (its rows then live only in scratch). scratch holds
  // nhwc_block_scratch_elements(g, C, outputs).
  void (*dw_pw_forward)(const T* x, const T* w, const T* pwt, T* z, int64_t C, int64_t outputs,
                        const ConvGeometry& g, const T* in_scale, const T* in_offset, T* scratch,
                        const BlockSums<T>& sums);
  // DwPwGrads' backward; scratch holds nhwc_block_backward_scratch_elements(g, C, outputs).
  void (*dw_pw_backward)(const DwPwGrads<T>& s, int64_t C, int64_t outputs, const ConvGeometry& g,
                         T* scratch);
  // One sample of FactorizedReduce's convolutions on relu(x), x (H, W, inputs): output pixel
  // (i, j) of y (Ho, Wo, outputs) holds relu(x[2i, 2j]) wt_even in channels [0, even) and
  // relu(x[2i + 1, 2j + 1]) wt_odd (0 where that pixel is outside x) in [even, outputs);
  // wt_even (inputs x even), wt_odd (inputs x (outputs - even)).
  void (*reduce_forward)(const T* x, const T* wt_even, const T* wt_odd, T* y, int64_t inputs,
                         int64_t outputs, int64_t even, const ConvGeometry& g);
  // Its backward, with w_even (even x inputs) and w_odd: gx (H, W, inputs) overwritten, gw_even
  // and gw_odd accumulated into (each null: not wanted).
  void (*reduce_backward)(const T* x, const T* w_even, const T* w_odd, const T* gy, T* gx,
                          T* gw_even, T* gw_odd, int64_t inputs, int64_t outputs, int64_t even,
                          const ConvGeometry& g);
  // Batch-norm pieces over pixels [begin, end) of (P, C) data, per channel c: sums of
  // (x - shift[c]) and its square ...
  void (*moments)(const T* x, int64_t C, int64_t begin, int64_t end, const T* shift, double* sum,
                  double* sum_squares);
  // ... y = x * scale[c] + offset[c] ...
  void (*scale_shift)(const T* x, T* y, int64_t C, int64_t begin, int64_t end, const T* scale,
                      const T* offset);
  // ... sums of gy and of gy * (x - mean[c]) ...
  void (*grad_moments)(const T* x, const T* gy, int64_t C, int64_t begin, int64_t end,
                       const T* mean, double* sum_gy, double* sum_gy_xc);
  // ... and gx = a[c] * gy + b[c] * x + c0[c].
  void (*normalize_backward)(const T* x, const T* gy, T* gx, int64_t C, int64_t begin, int64_t end,
                             const T* a, const T* b, const T* c0);
};

// Elements of scratch memory a convolution call on one sample needs.
int64_t nhwc_conv_scratch_elements(const ConvGeometry& g, int64_t C);
// ... a dw_pw_forward call, and a dw_pw_backward call.
int64_t nhwc_block_scratch_elements(const ConvGeometry& g, int64_t C, int64_t outputs);
int64_t nhwc_block_backward_scratch_elements(const ConvGeometry& g, int64_t C, int64_t outputs);

namespace portable {
const NhwcKernels<float>& nhwc_kernels_f32();
const NhwcKernels<double>& nhwc_kernels_f64();
}  // namespace portable

namespace avx2 {
const NhwcKernels<float>& nhwc_kernels_f32();  // call only where the CPU has AVX2 and FMA
}  // namespace avx2

namespace avx512 {
const NhwcKernels<float>& nhwc_kernels_f32();  // call only where the CPU has AVX-512 F/DQ/VL/BW
}  // namespace avx512

// The float table of kernel_capability() (cpu_capability.h), and the double one.
const NhwcKernels<float>& best_nhwc_kernels_f32();
inline const NhwcKernels<double>& best_nhwc_kernels_f64() { return portable::nhwc_kernels_f64(); }

}  // namespace kernels
}  // namespace datanas
