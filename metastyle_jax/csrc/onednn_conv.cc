// Mixed-precision 2-D convolutions for XLA:CPU through oneDNN, as three XLA FFI handlers:
//   forward          x (B,H,W,I) bf16, w (Kh,Kw,I,O) bf16          -> y  (B,Ho,Wo,O) f32
//   backward_data    g (B,Ho,Wo,O) bf16, w (Kh,Kw,I,O) bf16        -> dx (B,H,W,I)  f32
//   backward_weights x (B,H,W,I) bf16, g (B,Ho,Wo,O) bf16          -> dw (Kh,Kw,I,O) f32
// Attributes: strides sh, sw and non-negative zero padding pt, pb, pl, pr. Accumulation is float32; oneDNN
// runs the products on AMX or AVX512-BF16 where the CPU has them. Primitives are cached per geometry.
// XLA runs independent custom calls at once on its worker threads, so every primitive gets its scratchpad from
// the caller, one per call (scratchpad_mode::user): with oneDNN's own, shared one, concurrent calls wrote
// over each other's (tests/test_onednn.py, test_concurrent_calls_give_each_its_own_result).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

enum Op : int { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

struct Geometry {
  int64_t b, h, w, i, ho, wo, o, kh, kw, sh, sw, pt, pb, pl, pr;
  auto key(int op) const {
    return std::make_tuple(op, b, h, w, i, ho, wo, o, kh, kw, sh, sw, pt, pb, pl, pr);
  }
  memory::desc src(dt type) const { return memory::desc({b, i, h, w}, type, tag::nhwc); }
  memory::desc dst(dt type) const { return memory::desc({b, o, ho, wo}, type, tag::nhwc); }
  memory::desc weights(dt type, tag layout) const { return memory::desc({o, i, kh, kw}, type, layout); }
};

// One cached computation: the convolution primitive, and the reorder between the kernel's HWIO layout and
// the layout the primitive chose for it (null when they are the same), with the scratchpads each needs.
struct Plan {
  dnnl::primitive conv;
  memory::desc conv_scratchpad;
  memory::desc weights_desc;
  std::unique_ptr<dnnl::reorder> weights_reorder;
  memory::desc reorder_scratchpad;
};

// Attributes of every primitive: the caller provides the scratchpad.
dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g, dt dst_type) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, g.src(dt::bf16),
      g.weights(dt::bf16, tag::any), g.dst(dst_type), {g.sh, g.sw}, {g.pt, g.pl}, {g.pb, g.pr}, UserScratchpad());
}

// Sets plan's reorder from layout `from` to `to` and its scratchpad, or leaves it null where they are the same.
void SetReorder(Plan& plan, const memory::desc& from, const memory::desc& to) {
  if (from == to) return;
  dnnl::reorder::primitive_desc pd(Engine(), from, Engine(), to, UserScratchpad());
  plan.weights_reorder = std::make_unique<dnnl::reorder>(pd);
  plan.reorder_scratchpad = pd.scratchpad_desc();
}

Plan MakePlan(int op, const Geometry& g) {
  Plan plan;
  memory::desc hwio_bf16 = g.weights(dt::bf16, tag::hwio);
  if (op == kForward) {
    auto pd = ForwardDesc(g, dt::f32);
    plan.conv = dnnl::convolution_forward(pd);
    plan.conv_scratchpad = pd.scratchpad_desc();
    plan.weights_desc = pd.weights_desc();
    SetReorder(plan, hwio_bf16, plan.weights_desc);
    return plan;
  }
  auto hint = ForwardDesc(g, dt::bf16);
  if (op == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, g.src(dt::f32), g.weights(dt::bf16, tag::any),
        g.dst(dt::bf16), {g.sh, g.sw}, {g.pt, g.pl}, {g.pb, g.pr}, hint, UserScratchpad());
    plan.conv = dnnl::convolution_backward_data(pd);
    plan.conv_scratchpad = pd.scratchpad_desc();
    plan.weights_desc = pd.weights_desc();
    SetReorder(plan, hwio_bf16, plan.weights_desc);
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, g.src(dt::bf16), g.weights(dt::f32, tag::any),
        g.dst(dt::bf16), {g.sh, g.sw}, {g.pt, g.pl}, {g.pb, g.pr}, hint, UserScratchpad());
    plan.conv = dnnl::convolution_backward_weights(pd);
    plan.conv_scratchpad = pd.scratchpad_desc();
    plan.weights_desc = pd.diff_weights_desc();
    SetReorder(plan, plan.weights_desc, g.weights(dt::f32, tag::hwio));
  }
  return plan;
}

const Plan& GetPlan(int op, const Geometry& g) {
  static std::mutex mutex;
  static std::map<decltype(g.key(0)), Plan> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = g.key(op);
  auto found = plans.find(key);
  if (found == plans.end()) found = plans.emplace(key, MakePlan(op, g)).first;
  return found->second;
}

// Runs `op` on raw buffers: `kernel` is the HWIO weights (bf16, read) or weight gradient (f32, written).
void Run(int op, const Geometry& g, void* src, void* kernel, void* dst) {
  const Plan& plan = GetPlan(op, g);
  dnnl::stream stream(Engine());
  memory src_mem(g.src(op == kBackwardData ? dt::f32 : dt::bf16), Engine(), src);
  memory dst_mem(g.dst(op == kForward ? dt::f32 : dt::bf16), Engine(), dst);
  memory user_weights(g.weights(op == kBackwardWeights ? dt::f32 : dt::bf16, tag::hwio), Engine(), kernel);
  memory weights = plan.weights_reorder ? memory(plan.weights_desc, Engine()) : user_weights;
  memory conv_scratchpad(plan.conv_scratchpad, Engine());  // this call's own
  auto reorder = [&](memory& from, memory& to) {
    memory scratchpad(plan.reorder_scratchpad, Engine());
    plan.weights_reorder->execute(stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
  };
  if (op != kBackwardWeights && plan.weights_reorder) reorder(user_weights, weights);
  if (op == kForward) {
    plan.conv.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst_mem},
                               {DNNL_ARG_SCRATCHPAD, conv_scratchpad}});
  } else if (op == kBackwardData) {
    plan.conv.execute(stream, {{DNNL_ARG_DIFF_SRC, src_mem}, {DNNL_ARG_WEIGHTS, weights},
                               {DNNL_ARG_DIFF_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, conv_scratchpad}});
  } else {
    plan.conv.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_DIFF_WEIGHTS, weights},
                               {DNNL_ARG_DIFF_DST, dst_mem}, {DNNL_ARG_SCRATCHPAD, conv_scratchpad}});
    if (plan.weights_reorder) reorder(weights, user_weights);
  }
  stream.wait();
}

Geometry MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> y, int64_t kh, int64_t kw,
                      int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Geometry{x[0], x[1], x[2], x[3], y[1], y[2], y[3], kh, kw, sh, sw, pt, pb, pl, pr};
}

template <typename F>
ffi::Error Guard(F&& body) {
  try {
    body();
    return ffi::Error::Success();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(e.what());
  }
}

ffi::Error Forward(ffi::Buffer<ffi::BF16> x, ffi::Buffer<ffi::BF16> w, ffi::ResultBuffer<ffi::F32> y, int64_t sh,
                   int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Guard([&] {
    auto k = w.dimensions();
    Run(kForward, MakeGeometry(x.dimensions(), y->dimensions(), k[0], k[1], sh, sw, pt, pb, pl, pr),
        x.untyped_data(), w.untyped_data(), y->untyped_data());
  });
}

ffi::Error BackwardData(ffi::Buffer<ffi::BF16> g, ffi::Buffer<ffi::BF16> w, ffi::ResultBuffer<ffi::F32> dx,
                        int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Guard([&] {
    auto k = w.dimensions();
    Run(kBackwardData, MakeGeometry(dx->dimensions(), g.dimensions(), k[0], k[1], sh, sw, pt, pb, pl, pr),
        dx->untyped_data(), w.untyped_data(), g.untyped_data());
  });
}

ffi::Error BackwardWeights(ffi::Buffer<ffi::BF16> x, ffi::Buffer<ffi::BF16> g, ffi::ResultBuffer<ffi::F32> dw,
                           int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr) {
  return Guard([&] {
    auto k = dw->dimensions();
    Run(kBackwardWeights, MakeGeometry(x.dimensions(), g.dimensions(), k[0], k[1], sh, sw, pt, pb, pl, pr),
        x.untyped_data(), dw->untyped_data(), g.untyped_data());
  });
}

}  // namespace

#define BIND_CONV                                                                         \
  ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::BF16>>().Arg<ffi::Buffer<ffi::BF16>>().Ret<ffi::Buffer<ffi::F32>>() \
      .Attr<int64_t>("sh").Attr<int64_t>("sw").Attr<int64_t>("pt").Attr<int64_t>("pb")                  \
      .Attr<int64_t>("pl").Attr<int64_t>("pr")

XLA_FFI_DEFINE_HANDLER_SYMBOL(MetastyleConvForward, Forward, BIND_CONV);
XLA_FFI_DEFINE_HANDLER_SYMBOL(MetastyleConvBackwardData, BackwardData, BIND_CONV);
XLA_FFI_DEFINE_HANDLER_SYMBOL(MetastyleConvBackwardWeights, BackwardWeights, BIND_CONV);

// The oneDNN version this library runs with, as major * 10000 + minor * 100 + patch.
extern "C" int metastyle_onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return v->major * 10000 + v->minor * 100 + v->patch;
}
