#include "store/rocksdb_status.h"

namespace ecrm {

Status FromRocks(const rocksdb::Status& s) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = "rocksdb: " + s.ToString();
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsIncomplete()) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

}  // namespace ecrm
