#include "tasks/search_task.h"

namespace datanas {

std::unique_ptr<SearchTask> make_search_task(SearchOptions& options, const at::Device& device) {
  if (options.task == "lm") return make_lm_search_task(options, device);
  return make_cnn_search_task(options, device);
}

}  // namespace datanas
