// The search loop: alternating first-order bilevel steps (an architecture step on a validation
// batch, then a weight step on a training batch) or single-level joint steps, with the gap
// measured every epoch. Writes into options.out: config.json, log.jsonl, alphas.json,
// genotype.json (+ .dot), checkpoint.pt.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "search/search_options.h"
#include "space/genotype.h"

namespace datanas {

struct SearchResult {
  Genotype genotype;
  nlohmann::json last_epoch;  // the final log.jsonl record
};

// `resume`: continue from options.out/checkpoint.pt (the config there must match).
SearchResult run_search(const SearchOptions& options, bool resume);

// Mean entropy (nats) of the decision groups of a probability table.
double mean_group_entropy(const at::Tensor& probs, const Sampler& sampler);

}  // namespace datanas
