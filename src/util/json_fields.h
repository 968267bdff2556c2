// Options structs list their fields once, in a `for_each_field(options, fn)` function; these
// two visitors turn that list into JSON and back, so writing and reading config.json can never
// disagree about a key.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace datanas {

struct JsonFieldWriter {
  nlohmann::json& out;
  template <typename T>
  void operator()(const char* key, const T& value) const {
    out[key] = value;
  }
};

// Missing keys keep their default; a key of the wrong type is an error naming the file.
struct JsonFieldReader {
  const nlohmann::json& in;
  const std::string& source;
  template <typename T>
  void operator()(const char* key, T& value) const {
    if (!in.contains(key)) return;
    try {
      value = in.at(key).get<T>();
    } catch (const nlohmann::json::exception&) {
      throw Error(source + ": key '" + key + "' has the wrong type");
    }
  }
};

}  // namespace datanas
