#include <ATen/Context.h>

#include <array>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/op_bench.h"
#include "bench/search_step_bench.h"
#include "commands.h"
#include "search/run_files.h"
#include "util/error.h"
#include "util/runtime.h"

namespace datanas::cli {
using nlohmann::json;

namespace {

struct BenchFlags {
  std::string what = "search-step";
  bool as_json = false;
  std::vector<std::string> configs = {"cifar", "demo"};
  SearchBenchOptions search;
  std::string granularity = "node";
  std::string kernels = "native";
  OpBenchOptions ops;
  int threads = 0;
  std::string mkldnn = "on";
  std::string memory_format = "auto";
  bool no_dense = false;
  std::string pytorch_script, python = "/usr/bin/python3";
  std::string out;
};

// Runs the PyTorch reference of the dense step for one config; its last stdout line is JSON.
double pytorch_dense_ms(const BenchFlags& f, const SearchBenchConfig& c) {
  char command[1024];
  std::snprintf(command, sizeof command,
                "'%s' '%s' --C %lld --layers %d --batch %lld --channels %lld --size %lld --M %d "
                "--threads %d --warmup %d --repeats %d",
                f.python.c_str(), f.pytorch_script.c_str(),
                static_cast<long long>(c.net.init_channels), c.net.layers,
                static_cast<long long>(c.batch_size), static_cast<long long>(c.channels),
                static_cast<long long>(c.size), f.search.Ms.front(), at::get_num_threads(),
                f.search.warmup, f.search.repeats);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command, "r"), pclose);
  if (!pipe) throw Error("--pytorch: cannot run " + f.python);
  std::string last, line;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe.get())) {
    line += buffer.data();
    if (!line.empty() && line.back() == '\n') {
      if (line.size() > 1) last = line;
      line.clear();
    }
  }
  if (!line.empty()) last = line;
  try {
    return json::parse(last).at("pytorch_dense_ms").get<double>();
  } catch (const std::exception&) {
    throw Error(
        "--pytorch " + f.pytorch_script +
        ": expected a last output line with pytorch_dense_ms (is python3-torch installed?)");
  }
}

void print_row(const BenchFlags& f, const json& row) {
  if (f.as_json) {
    std::printf("%s\n", row.dump().c_str());
  } else if (f.what == "ops") {
    std::printf(
        "%-15s fwd %8.2f ms  fwd+bwd %8.2f ms  native %7.2f / %7.2f ms (%5.1fx / %5.1fx)  "
        "limit %6.2f ms  (%5.1fx, native %5.1fx the limit)\n",
        row["op"].get<std::string>().c_str(), row["fwd_ms"].get<double>(),
        row["fwd_bwd_ms"].get<double>(), row["native_fwd_ms"].get<double>(),
        row["native_ms"].get<double>(), row["native_fwd_speedup"].get<double>(),
        row["native_speedup"].get<double>(), row["fwd_bwd_limit_ms"].get<double>(),
        row["fwd_bwd_vs_limit"].get<double>(), row["native_vs_limit"].get<double>());
  } else {
    std::printf(
        "%-6s M=%d  dense %9.1f ms  fast %8.1f ms (arch %8.1f + weight %8.1f)  "
        "oracle %8.1f ms  speedup %5.2fx  overhead %4.2f  ops/edge %4.2f  rss %6.0f MB\n",
        row["config"].get<std::string>().c_str(), row["M"].get<int>(), row.value("dense_ms", 0.0),
        row["fast_ms"].get<double>(), row["fast_arch_ms"].get<double>(),
        row["fast_weight_ms"].get<double>(), row["oracle_ms"].get<double>(),
        row.value("speedup", 0.0), row["overhead"].get<double>(), row["distinct_ops"].get<double>(),
        row["peak_rss_mb"].get<double>());
  }
  std::fflush(stdout);
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  app.add_option("--what", f->what, "search-step | ops")
      ->check(CLI::IsMember({"search-step", "ops"}))
      ->capture_default_str();
  app.add_flag("--json", f->as_json, "one JSON object per line");
  app.add_option("--configs", f->configs, "search-step: configs to measure (cifar, demo, tiny)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--M", f->search.Ms, "search-step: EGS draws to measure")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--granularity", f->granularity, "search-step: node | edge")
      ->capture_default_str();
  app.add_option("--kernels", f->kernels, "search-step: native | torch (ops always time both)")
      ->capture_default_str();
  app.add_option("--alphas", f->search.alphas_file,
                 "search-step: alphas.json of a search run (default: the initial alphas)");
  app.add_flag("--no-dense", f->no_dense, "search-step: skip the dense path");
  app.add_option("--pytorch", f->pytorch_script,
                 "search-step: also time this PyTorch script of the dense step "
                 "(bench/pytorch_search_step.py)");
  app.add_option("--python", f->python, "interpreter for --pytorch")->capture_default_str();
  app.add_option("--shape", f->ops.shape, "ops: input N,C,H,W")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--stride", f->ops.stride, "ops: 1 or 2")->capture_default_str();
  app.add_option("--ops", f->ops.names, "ops: the ops to time (default: every op)")->delimiter(',');
  app.add_option("--warmup", f->search.warmup, "untimed runs before timing")->capture_default_str();
  app.add_option("--repeats", f->search.repeats, "timed runs (the median is reported)")
      ->capture_default_str();
  app.add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--mkldnn", f->mkldnn, "oneDNN convolutions: on | off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  add_memory_format_flag(app, f->memory_format);
  app.add_option("--out", f->out, "also write the rows to this JSON-lines file");
  return [f]() {
    if (f->search.repeats < 1 || f->search.warmup < 0)
      throw Error("--repeats/--warmup: expected repeats >= 1 and warmup >= 0");
    if (f->search.Ms.empty()) throw Error("--M: expected at least one value");
    for (int M : f->search.Ms)
      if (M < 1) throw Error("--M: expected positive values");
    configure_threads(f->threads);
    at::globalContext().setUserEnabledMkldnn(f->mkldnn == "on");
    f->search.granularity = parse_granularity(f->granularity);
    f->search.kernels = parse_kernel_backend(f->kernels);
    f->search.channels_last = channels_last_for(f->memory_format);
    // ops: both backends in the layout asked for (and each in NCHW too).
    f->ops.channels_last = channels_last_for(f->memory_format);
    f->search.with_dense = !f->no_dense;
    f->ops.warmup = std::max(f->search.warmup, 1);
    f->ops.repeats = std::max(f->search.repeats, 3);
    std::vector<json> rows;
    auto on_row = [&](json row) {
      row["mkldnn"] = f->mkldnn == "on";
      rows.push_back(row);
      print_row(*f, row);
    };
    if (f->what == "ops") {
      run_op_bench(f->ops, on_row);
    } else {
      for (const auto& name : f->configs) {
        const SearchBenchConfig& config = search_bench_config(name);
        double pytorch_ms = 0;
        if (!f->pytorch_script.empty()) {
          std::fprintf(stderr, "bench %s: PyTorch dense step (%s)\n", name.c_str(),
                       f->pytorch_script.c_str());
          pytorch_ms = pytorch_dense_ms(*f, config);
        }
        run_search_step_bench(config, f->search, [&](json row) {
          if (pytorch_ms > 0) {
            row["pytorch_dense_ms"] = pytorch_ms;
            row["speedup_vs_pytorch"] = pytorch_ms / row["fast_ms"].get<double>();
          }
          on_row(row);
        });
      }
    }
    if (!f->out.empty()) write_log_lines(f->out, rows);
    return 0;
  };
}

}  // namespace datanas::cli
