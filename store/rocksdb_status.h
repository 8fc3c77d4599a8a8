// The one adapter from rocksdb::Status to ecrm's Status. Thread-safe (pure function).
#pragma once

#include "common/status.h"
#include "rocksdb/status.h"

namespace ecrm {

Status FromRocks(const rocksdb::Status& s);

}  // namespace ecrm
