#include <cstdio>

#include "commands.h"
#include "data/datasets.h"
#include "nets/network_info.h"
#include "report/figures.h"
#include "search/run_files.h"
#include "train/trainer.h"
#include "util/files.h"
#include "util/memory_format.h"

namespace datanas::cli {
using nlohmann::json;

namespace {

// The CPU-sized retraining of the pipeline's default (a few minutes on 2 cores).
TrainOptions default_retraining() {
  TrainOptions o;
  o.limit = 4000;
  o.test_limit = 2000;
  o.init_channels = 8;
  o.layers = 5;
  o.epochs = 4;
  o.batch_size = 64;
  o.drop_path = 0.1;
  return o;
}

json write_report(const std::string& out, const SearchResult& search, const TrainResult& train,
                  const json& info) {
  json report = {
      {"genotype", json::parse(genotype_to_json(search.genotype))},
      {"search_acc", search.last_epoch["search_acc"]},
      {"derived_acc", search.last_epoch["derived_acc"]},
      {"derived_acc_raw", search.last_epoch["derived_acc_raw"]},
      {"gap", search.last_epoch["gap"]},
      {"params", info["params"]},
      {"params_auxiliary", info["params_auxiliary"]},
      {"macs", info["macs"]},
      {"test_acc", train.last_epoch["test_acc"]},
      {"test_top5", train.last_epoch["test_top5"]},
      {"model", train.model_path},
  };
  write_json_file(run_file(out, "report.json"), report);
  return report;
}

}  // namespace

Command add_run(CLI::App& app) {
  auto flags = std::make_shared<SearchFlags>();
  auto train = std::make_shared<TrainOptions>(default_retraining());
  auto out = std::make_shared<std::string>("runs/demo");
  add_search_flags(app, *flags);
  app.add_option("--out", *out, "pipeline folder (search/, train/, report.json)")
      ->capture_default_str();
  app.add_option("--train-epochs", train->epochs, "retraining epochs")->capture_default_str();
  app.add_option("--train-init-channels", train->init_channels, "retraining channels")
      ->capture_default_str();
  app.add_option("--train-layers", train->layers, "retraining cells")->capture_default_str();
  app.add_option("--train-batch-size", train->batch_size, "retraining batch size")
      ->capture_default_str();
  app.add_option("--train-lr", train->lr, "retraining learning rate")->capture_default_str();
  app.add_option("--train-limit", train->limit, "retraining images (0 = all)")
      ->capture_default_str();
  app.add_option("--test-limit", train->test_limit, "test images (0 = all)")->capture_default_str();
  app.add_option("--auxiliary-weight", train->auxiliary_weight, "auxiliary loss weight (0 = off)")
      ->capture_default_str();
  app.add_option("--drop-path", train->drop_path, "final drop-path probability")
      ->capture_default_str();
  app.add_option("--cutout", train->cutout, "cutout side (0 = off)")->capture_default_str();
  return [=]() {
    SearchOptions search = resolve_search_flags(*flags);
    search.out = run_file(*out, "search");
    make_directories(*out);
    std::fprintf(stderr, "== 1/3 search ==\n");
    SearchResult searched = run_search(search, /*resume=*/false);
    render_dot(run_file(search.out, "genotype_normal.dot"));
    render_dot(run_file(search.out, "genotype_reduce.dot"));
    plot_log(run_file(search.out, "log.jsonl"), run_file(search.out, "gap.png"),
             "search vs derived accuracy", {"search_acc", "derived_acc", "derived_acc_raw"});

    std::fprintf(stderr, "== 2/3 retrain the derived architecture ==\n");
    TrainOptions retrain = *train;
    retrain.genotype = run_file(search.out, "genotype.json");
    retrain.dataset = search.dataset;
    retrain.data_dir = search.data_dir;
    retrain.seed = search.seed;
    retrain.threads = search.threads;
    retrain.device = search.device;
    retrain.memory_format = memory_format_name(search.net.channels_last);
    retrain.kernels = kernel_backend_name(search.net.kernels);
    retrain.out = run_file(*out, "train");
    TrainResult trained = run_training(retrain, /*resume=*/false);
    plot_training(retrain.out);

    std::fprintf(stderr, "== 3/3 report ==\n");
    const DatasetInfo& info = dataset_info(search.dataset);
    NetworkOptions net;
    net.input_channels = info.channels;
    net.init_channels = retrain.init_channels;
    net.layers = retrain.layers;
    net.classes = info.classes;
    const json size = network_info(searched.genotype, net, info.size);
    const json report = write_report(*out, searched, trained, size);
    print_search_result(searched, search);
    std::printf(
        "retrained network: %lld parameters, %.1fM MACs, test accuracy %.2f%% (top-5 %.2f%%)\n",
        report["params"].get<long long>(), report["macs"].get<double>() / 1e6,
        100 * report["test_acc"].get<double>(), 100 * report["test_top5"].get<double>());
    std::printf("cells: %s/genotype_{normal,reduce}.{dot,svg,png}\n", search.out.c_str());
    std::printf("curves: %s/gap.png, %s/{accuracy,loss}.png\nreport: %s\n", search.out.c_str(),
                retrain.out.c_str(), run_file(*out, "report.json").c_str());
    return 0;
  };
}

}  // namespace datanas::cli
