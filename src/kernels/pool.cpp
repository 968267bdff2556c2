#include "kernels/pool.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename T>
void forward_planes(bool max, const at::Tensor& x, at::Tensor& y, const kernels::PoolGeometry& g) {
  const auto& k = kernels::kernel_table<T>();
  const auto fn = max ? k.max_pool_forward : k.avg_pool_forward;
  const int64_t in = g.height * g.width, out = g.out_height * g.out_width;
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  kernels::for_each_plane<T>(
      x.size(0) * x.size(1), in + out, kernels::pool_scratch_elements(g),
      [&](int64_t plane, T* scratch) { fn(xp + plane * in, yp + plane * out, g, scratch); });
}

template <typename T>
void backward_planes(bool max, const at::Tensor& x, const at::Tensor& gy, at::Tensor& gx,
                     const kernels::PoolGeometry& g) {
  const auto& k = kernels::kernel_table<T>();
  const int64_t in = g.height * g.width, out = g.out_height * g.out_width;
  const T* xp = max ? x.data_ptr<T>() : nullptr;
  const T* gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  kernels::for_each_plane<T>(
      gx.size(0) * gx.size(1), 2 * in + out, kernels::pool_scratch_elements(g),
      [&](int64_t plane, T* scratch) {
        if (max) {
          k.max_pool_backward(xp + plane * in, gyp + plane * out, gxp + plane * in, g, scratch);
        } else {
          k.avg_pool_backward(gyp + plane * out, gxp + plane * in, g, scratch);
        }
      });
}

// NHWC: one sample per task.
template <typename T>
void forward_nhwc(bool max, const at::Tensor& x, at::Tensor& y, const kernels::PoolGeometry& g) {
  const auto& k = kernels::nhwc_table<T>();
  const auto fn = max ? k.max_pool_forward : k.avg_pool_forward;
  const int64_t C = x.size(1), in = g.height * g.width * C, out = g.out_height * g.out_width * C;
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  kernels::for_each_sample(x.size(0), [&](int64_t n) { fn(xp + n * in, yp + n * out, C, g); });
}

template <typename T>
void backward_nhwc(bool max, const at::Tensor& x, const at::Tensor& gy, at::Tensor& gx,
                   const kernels::PoolGeometry& g) {
  const auto& k = kernels::nhwc_table<T>();
  const int64_t C = gx.size(1), in = g.height * g.width * C, out = g.out_height * g.out_width * C;
  const T* xp = max ? x.data_ptr<T>() : nullptr;
  const T* gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  kernels::for_each_sample(gx.size(0), [&](int64_t n) {
    if (max) {
      k.max_pool_backward(xp + n * in, nullptr, gyp + n * out, nullptr, gxp + n * in, C, g);
    } else {
      k.avg_pool_backward(nullptr, gyp + n * out, nullptr, gxp + n * in, C, g);
    }
  });
}

struct Pool3x3Function : public torch::autograd::Function<Pool3x3Function> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, int64_t stride,
                            bool max) {
    const at::MemoryFormat layout = kernels::layout_of(input);
    at::Tensor x = input.contiguous(layout);
    const kernels::PoolGeometry g = pool3x3_geometry(x, stride);
    at::Tensor y = at::empty({x.size(0), x.size(1), g.out_height, g.out_width},
                             x.options().memory_format(layout));
    const bool f32 = x.scalar_type() == at::kFloat;
    if (kernels::is_nhwc(layout)) {
      f32 ? forward_nhwc<float>(max, x, y, g) : forward_nhwc<double>(max, x, y, g);
    } else {
      f32 ? forward_planes<float>(max, x, y, g) : forward_planes<double>(max, x, y, g);
    }
    // Max pooling finds its argmax again in backward: cheaper than storing indices.
    if (max) ctx->save_for_backward({x});
    ctx->saved_data["sizes"] = x.sizes().vec();
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["max"] = max;
    ctx->saved_data["nhwc"] = kernels::is_nhwc(layout);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const bool max = ctx->saved_data["max"].toBool();
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const at::Tensor x = max ? ctx->get_saved_variables()[0] : at::Tensor();
    const bool nhwc = ctx->saved_data["nhwc"].toBool();
    const at::MemoryFormat layout =
        nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    at::Tensor gy = grads[0].contiguous(layout);
    at::Tensor gx = at::empty(sizes, gy.options().memory_format(layout));
    const kernels::PoolGeometry g = pool3x3_geometry(gx, stride);
    const bool f32 = gy.scalar_type() == at::kFloat;
    if (nhwc) {
      f32 ? backward_nhwc<float>(max, x, gy, gx, g) : backward_nhwc<double>(max, x, gy, gx, g);
    } else {
      f32 ? backward_planes<float>(max, x, gy, gx, g) : backward_planes<double>(max, x, gy, gx, g);
    }
    return {gx, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

kernels::PoolGeometry pool3x3_geometry(const at::Tensor& x, int64_t stride) {
  if (x.dim() != 4) throw Error("3x3 pool: expected a 4-D (N, C, H, W) input");
  if (stride < 1) throw Error("3x3 pool: expected stride >= 1");
  kernels::PoolGeometry g;
  g.height = x.size(2);
  g.width = x.size(3);
  g.stride = stride;
  g.out_height = (g.height - 1) / stride + 1;
  g.out_width = (g.width - 1) / stride + 1;
  return g;
}

at::Tensor native_max_pool3x3(const at::Tensor& x, int64_t stride) {
  return Pool3x3Function::apply(x, stride, true);
}

at::Tensor native_avg_pool3x3(const at::Tensor& x, int64_t stride) {
  return Pool3x3Function::apply(x, stride, false);
}

}  // namespace datanas
