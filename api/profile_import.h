// ProfileImport: POST /v1/profiles/import — other channels' data (CRM, call centre, shop system)
// as NDJSON records {"identifiers": {...}, "traits": {...}, "channel": "crm", "updated_at": ...}.
// Each valid line becomes an identifiers-and-traits update of the profile its identifiers lead
// to (merging profiles as identify events do); invalid lines are reported by line number (from 1)
// and skipped. Answers once the valid lines are durable. Owned by ApiService; the engine must
// outlive it. Threading: Handle is called from any HTTP thread; it keeps no state between calls.
#pragma once

#include <string>
#include <vector>

#include "api/http_types.h"
#include "common/clock.h"
#include "ingest/profile_record.h"
#include "profiler/engine.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace ecrm {

struct ImportOptions {
  ProfileRecordOptions records;
  size_t max_lines = 10000;
};

class ProfileImport {
 public:
  ProfileImport(ProfileEngine& engine, const Clock& clock, prometheus::Registry& registry,
                ImportOptions options);
  // Answers through `respond` (now for a request-level error, later once durable).
  void Handle(const HttpRequest& req, Responder respond);
  bool KnownType(std::string_view type) const;

 private:
  ProfileEngine& engine_;
  const Clock& clock_;
  ImportOptions options_;
  prometheus::Counter* applied_;   // records durable
  prometheus::Counter* rejected_;  // invalid lines, skipped
};

}  // namespace ecrm
