// The in-process service the integration tests start: a Config on a temp data dir with a free
// port, write key "wk" and admin token "admin", and the request headers that go with them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "app/config.h"

namespace ecrm::testing {

inline Config TestServiceConfig(const std::string& data_dir) {
  Config c;
  c.http_port = 0;
  c.data_dir = data_dir;
  c.write_keys = {"wk"};
  c.admin_token = "admin";
  c.workers = 2;
  c.http_threads = 2;
  c.partitions = 16;
  return c;
}

inline const std::vector<std::pair<std::string, std::string>> kCollectHeaders = {
    {"Authorization", "Basic d2s6"}, {"Content-Type", "application/json"}};  // "wk:"
inline const std::vector<std::pair<std::string, std::string>> kAdminHeaders = {
    {"Authorization", "Bearer admin"}};

}  // namespace ecrm::testing
