// Derivation of the most probable EGS code (METHOD.md, "Deriving the architecture").
#pragma once
#include <vector>

namespace datanas {

// Probability that M independent draws from a categorical distribution hit exactly the set T,
// given the probabilities of T's members: sum over U subset of T of
// (-1)^(|T|-|U|) (sum_{u in U} p_u)^M.
double exact_support_probability(const std::vector<double>& set_probs, int M);

// Entries of `probs` (clipped at 0 and normalised here) sorted by descending probability; keeps
// the top t* where t* = argmax over t = 1..min(M, n) of the probability of hitting exactly the
// top-t set. Returns the indices of the kept entries, most probable first.
std::vector<int> most_probable_support(const std::vector<double>& probs, int M);

}  // namespace datanas
