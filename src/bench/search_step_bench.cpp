#include "bench/search_step_bench.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench/bench_timing.h"
#include "kernels/cpu_capability.h"
#include "nets/network.h"
#include "search/run_files.h"
#include "search/search_state.h"
#include "search/search_steps.h"
#include "space/ops.h"
#include "util/error.h"
#include "util/memory_format.h"

namespace datanas {
using nlohmann::json;

const std::vector<SearchBenchConfig>& search_bench_configs() {
  static const std::vector<SearchBenchConfig> configs = [] {
    SearchBenchConfig cifar{"cifar", 3, 32, SupernetOptions{}, 64};
    cifar.net.input_channels = 3;
    cifar.net.init_channels = 16;
    cifar.net.layers = 8;
    const SearchOptions defaults;
    SearchBenchConfig demo{"demo", 1, 28, defaults.net, defaults.batch_size};
    SearchBenchConfig tiny{"tiny", 1, 28, defaults.net, 8};
    tiny.net.init_channels = 4;
    tiny.net.layers = 3;
    return std::vector<SearchBenchConfig>{cifar, demo, tiny};
  }();
  return configs;
}

const SearchBenchConfig& search_bench_config(const std::string& name) {
  for (const auto& c : search_bench_configs())
    if (c.name == name) return c;
  throw Error("--configs: unknown config '" + name + "' (expected cifar, demo or tiny)");
}

namespace {

double elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The supernet, alphas and optimisers of one (config, M, exec), as a search would build them.
struct Bench {
  SearchOptions options;
  std::unique_ptr<Sampler> sampler;
  SearchState state;
  Batch train, val;

  Bench(const SearchBenchConfig& config, const SearchBenchOptions& bench, int M,
        const std::string& exec, const at::Tensor& alpha_normal, const at::Tensor& alpha_reduce) {
    options.net = config.net;
    options.net.input_channels = config.channels;
    options.net.channels_last = bench.channels_last;
    options.net.kernels = bench.kernels;
    options.batch_size = config.batch_size;
    options.sampler.M = M;
    options.sampler.granularity = bench.granularity;
    options.exec = exec;
    options.seed = bench.seed;
    sampler = make_sampler(options.sampler, CellSpace{options.net.nodes, 8});
    sampler->set_epoch(0, options.epochs);
    state = make_search_state(options, *sampler, at::kCPU);
    if (alpha_normal.defined()) {
      at::NoGradGuard no_grad;
      state.alpha_normal.copy_(alpha_normal);
      state.alpha_reduce.copy_(alpha_reduce);
    }
    at::Generator g = at::detail::createCPUGenerator(bench.seed);
    auto batch = [&] {
      at::Tensor images =
          at::normal(0.0, 1.0, {config.batch_size, config.channels, config.size, config.size}, g);
      return Batch{images, at::randint(0, options.net.classes, {config.batch_size}, g)};
    };
    train = batch();
    val = batch();
  }
};

// A generator in the same state. LibTorch 1.13's Generator::clone() never frees its copy (the
// copy starts with a weak count of 0, so its last release does not delete it): copy the state.
at::Generator copy_of(const at::Generator& g) {
  at::Generator copy = at::detail::createCPUGenerator();
  copy.set_state(g.get_state());
  return copy;
}

// What a timed weight step sampled from: the generator state and alphas just before it.
struct Draw {
  at::Generator generator;
  at::Tensor alpha_normal, alpha_reduce;
};

struct StepTimes {
  double arch_ms = 0, weight_ms = 0, total_ms = 0;
  std::vector<Draw> weight_draws;
};

// Alternating architecture and weight steps, as a first-order search runs them.
StepTimes time_iterations(Bench& b, int warmup, int repeats) {
  StepContext context{b.options, *b.sampler, b.state, at::kCPU};
  at::Generator g = at::detail::createCPUGenerator(b.options.seed + 7);
  std::vector<double> arch, weight, total;
  std::vector<Draw> draws;
  for (int i = 0; i < warmup + repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    architecture_step(context, b.val, g);
    const double a = elapsed_ms(start);
    draws.push_back(
        {copy_of(g), b.state.alpha_normal.detach().clone(), b.state.alpha_reduce.detach().clone()});
    start = std::chrono::steady_clock::now();
    weight_step(context, b.train, g);
    const double w = elapsed_ms(start);
    if (i < warmup) {
      draws.pop_back();
      continue;
    }
    arch.push_back(a);
    weight.push_back(w);
    total.push_back(a + w);
  }
  return {median(arch), median(weight), median(total), draws};
}

// The discrete cell of a sampled code: every selected op except `none`. A node left with no
// op (its code picked only `none`) gets the cheapest stand-in, skip_connect from c_{k-1}.
std::vector<GenotypeNode> sampled_cell(const CellWeights& w, const CellSpace& space) {
  const auto& names = cnn_op_names();
  std::vector<GenotypeNode> nodes;
  for (int node = 0; node < space.nodes; ++node) {
    GenotypeNode pairs;
    for (int input = 0; input < CellSpace::inputs(node); ++input)
      for (int k = 1; k < space.ops; ++k)
        if (w.is_selected(CellSpace::edge(node, input), k, space.ops))
          pairs.push_back({names[k], input});
    if (pairs.empty()) pairs.push_back({"skip_connect", 1});
    nodes.push_back(pairs);
  }
  return nodes;
}

// Mean number of ops (other than none) a code selects per edge, over `draws` codes.
double distinct_ops(Bench& b, int draws) {
  at::Generator g = at::detail::createCPUGenerator(b.options.seed + 11);
  const CellSpace& space = b.sampler->space();
  int64_t selected = 0, edges = 0;
  for (int d = 0; d < draws; ++d) {
    for (const at::Tensor& alpha : {b.state.alpha_normal, b.state.alpha_reduce}) {
      CellWeights w = b.sampler->sample(alpha.detach(), g);
      for (int e = 0; e < space.edges(); ++e)
        for (int k = 1; k < space.ops; ++k) selected += w.is_selected(e, k, space.ops);
      edges += space.edges();
    }
  }
  return static_cast<double>(selected) / edges;
}

// One SGD step of the sampled architecture as a plain discrete network with the supernet's
// ops: the lower bound of a weight step. Timed on the very architectures the timed weight steps
// drew (the same generator state and alphas), median over them.
double oracle_ms(Bench& b, const SearchBenchConfig& config, const SearchBenchOptions& bench,
                 const std::vector<Draw>& draws) {
  const CellSpace& space = b.sampler->space();
  std::vector<double> times;
  for (const Draw& draw : draws) {
    at::Generator g = copy_of(draw.generator);
    Genotype genotype;  // sampled in weight_step's order: normal, then reduce
    genotype.normal = sampled_cell(b.sampler->sample(draw.alpha_normal, g), space);
    genotype.reduce = sampled_cell(b.sampler->sample(draw.alpha_reduce, g), space);
    for (int j = space.nodes - b.options.net.multiplier; j < space.nodes; ++j) {
      genotype.normal_concat.push_back(2 + j);
      genotype.reduce_concat.push_back(2 + j);
    }
    NetworkOptions net;
    net.input_channels = config.channels;
    net.init_channels = config.net.init_channels;
    net.layers = config.net.layers;
    net.classes = config.net.classes;
    net.supernet_ops = true;
    net.channels_last = bench.channels_last;
    net.kernels = bench.kernels;
    Network network(genotype, net);
    network->train();
    torch::optim::SGD sgd(network->parameters(), torch::optim::SGDOptions(b.options.lr)
                                                     .momentum(b.options.momentum)
                                                     .weight_decay(b.options.weight_decay));
    times.push_back(median_ms(
        [&] {
          sgd.zero_grad();
          at::Tensor loss =
              at::cross_entropy_loss(network->forward(b.train.images).logits, b.train.labels);
          loss.backward();
          torch::nn::utils::clip_grad_norm_(network->parameters(), b.options.grad_clip);
          sgd.step();
        },
        1, 1));
  }
  return median(times);
}

std::pair<at::Tensor, at::Tensor> read_alphas(const std::string& path, const CellSpace& space) {
  if (path.empty()) return {};
  const json file = read_json_file(path);
  if (file.value("format", "") != "datanas-alphas/1")
    throw Error(path + ": expected a datanas-alphas/1 file (alphas.json of a search run)");
  auto table = [&](const char* which) {
    if (!file.contains(which) || !file[which].contains("alpha"))
      throw Error(path + ": missing " + std::string(which) + ".alpha");
    at::Tensor t = tensor_from_json(file[which]["alpha"], path);
    if (t.dim() != 2 || t.size(0) != space.edges() || t.size(1) != space.ops)
      throw Error(path + ": " + which + ".alpha must be " + std::to_string(space.edges()) + "x" +
                  std::to_string(space.ops));
    return t;
  };
  return {table("normal"), table("reduce")};
}

}  // namespace

void run_search_step_bench(const SearchBenchConfig& config, const SearchBenchOptions& bench,
                           const std::function<void(const json&)>& on_row) {
  auto [alpha_normal, alpha_reduce] =
      read_alphas(bench.alphas_file, CellSpace{config.net.nodes, 8});
  // Fast path first, in the order given (peaks only grow within a process), dense path last.
  std::vector<json> rows;
  for (int M : bench.Ms) {
    std::fprintf(stderr, "bench %s: fast path, M=%d\n", config.name.c_str(), M);
    reset_peak_rss();
    Bench fast(config, bench, M, "fast", alpha_normal, alpha_reduce);
    const StepTimes times = time_iterations(fast, bench.warmup, bench.repeats);
    const double rss = peak_rss_mb();
    const double oracle = oracle_ms(fast, config, bench, times.weight_draws);
    rows.push_back({{"config", config.name},
                    {"M", M},
                    {"granularity", granularity_name(bench.granularity)},
                    {"probabilities", bench.alphas_file.empty() ? "initial" : bench.alphas_file},
                    {"batch", config.batch_size},
                    {"input", {config.channels, config.size, config.size}},
                    {"C", config.net.init_channels},
                    {"cells", config.net.layers},
                    {"threads", at::get_num_threads()},
                    {"memory_format", memory_format_name(bench.channels_last)},
                    {"kernels", kernel_backend_name(bench.kernels)},
                    {"cpu_capability", kernels::cpu_capability_name(kernels::kernel_capability())},
                    {"fast_ms", times.total_ms},
                    {"fast_arch_ms", times.arch_ms},
                    {"fast_weight_ms", times.weight_ms},
                    {"oracle_ms", oracle},
                    {"overhead", times.weight_ms / oracle},
                    {"distinct_ops", distinct_ops(fast, 64)},
                    {"peak_rss_mb", rss}});
  }
  if (bench.with_dense) {
    // Every op runs whatever the code is, so one M stands for all.
    std::fprintf(stderr, "bench %s: dense path\n", config.name.c_str());
    reset_peak_rss();
    Bench dense(config, bench, bench.Ms.front(), "dense", alpha_normal, alpha_reduce);
    const double dense_ms = time_iterations(dense, bench.warmup, bench.repeats).total_ms;
    const double dense_rss = peak_rss_mb();
    for (json& row : rows) {
      row["dense_ms"] = dense_ms;
      row["speedup"] = dense_ms / row["fast_ms"].get<double>();
      row["dense_peak_rss_mb"] = dense_rss;
    }
  }
  for (const json& row : rows) on_row(row);
}

}  // namespace datanas
