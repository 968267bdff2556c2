#include "tasks/lm_options.h"

#include "util/error.h"

namespace datanas {

void validate_lm_options(const LmOptions& o) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw Error(message);
  };
  auto probability = [](double p) { return p >= 0 && p < 1; };
  require(o.bptt >= 2, "--bptt: expected >= 2");
  require(o.eval_batch_size >= 1, "--eval-batch-size: expected >= 1");
  require(o.eval_limit >= 0, "--eval-limit: expected >= 0");
  require(o.model.emsize >= 1 && o.model.nhid >= 1, "--emsize/--nhid: expected >= 1");
  require(probability(o.model.dropout) && probability(o.model.dropouth) &&
              probability(o.model.dropoutx) && probability(o.model.dropouti) &&
              probability(o.model.dropoute),
          "--dropout/--dropouth/--dropoutx/--dropouti/--dropoute: expected in [0, 1)");
  require(o.model.lstm_layers >= 1, "--lstm-layers: expected >= 1");
}

}  // namespace datanas
