#include "app/check.h"

#include <cstdint>
#include <filesystem>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "profiler/graph_check.h"
#include "store/keys.h"
#include "store/kv_store.h"
#include "store/partition_digest.h"

namespace ecrm {

int RunCheck(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  std::string data_dir = "./data";
  uint64_t limit = 0;
  CLI::App app{"ecrm check: check the identity graph of a stopped ecrm's data dir", "ecrm check"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.add_option("--data-dir", data_dir, "Data directory")
      ->envname("ECRM_DATA_DIR")
      ->capture_default_str();
  app.add_option("--limit", limit, "Print at most N violations (all are counted; 0 = all)")
      ->capture_default_str();
  bool digests = false;
  app.add_flag("--partition-digests", digests,
               "Instead of checking the graph, print a digest of each partition's state (to "
               "compare two copies of a partition)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    err << "ecrm check: " << e.what() << "\n";
    return 2;
  }

  StoreOptions options;
  options.path = (std::filesystem::path(data_dir) / "db").string();
  options.block_cache_bytes = 64 << 20;
  options.read_only = true;
  auto store = KvStore::Open(options);
  if (!store.ok()) {
    err << "ecrm check: cannot open " << options.path << ": " << store.status().message() << "\n";
    return 2;
  }
  if (digests) {
    auto count = (*store)->Get(Cf::kMeta, kMetaPartitionCount);
    uint32_t partitions = 0;
    if (!count.ok() || !*count || !absl::SimpleAtoi(**count, &partitions) || partitions == 0) {
      err << "ecrm check: " << options.path << ": no partition count recorded\n";
      return 2;
    }
    auto all = DigestPartitions(**store, partitions);
    if (!all.ok()) {
      err << "ecrm check: " << options.path << ": " << all.status().message() << "\n";
      return 2;
    }
    for (const auto& d : *all) {
      out << absl::StrFormat("partition %04x digest %016x records %d\n", d.partition, d.digest,
                             d.records);
    }
    out << std::flush;
    return 0;
  }
  uint64_t printed = 0;
  auto counts = CheckIdentityGraph(**store, [&](const GraphViolation& v) {
    if (limit != 0 && printed >= limit) return;
    out << v.message << "\n";
    printed++;
  });
  if (!counts.ok()) {
    err << "ecrm check: " << options.path << ": " << counts.status().message() << "\n";
    return 2;
  }
  // Merges a crash cut short: their identifiers show as violations until a start finishes them.
  uint64_t pending = 0;
  (void)(*store)->Scan(Cf::kMeta, kMetaPendingMergePrefix, [&](std::string_view, std::string_view) {
    pending++;
    return true;
  });
  if (pending > 0) {
    out << pending << " merges were cut short by a crash and finish at the next start: start ecrm "
        << "once, stop it, and check again\n";
  }
  out << "checked " << counts->profiles << " profiles, " << counts->aliases << " aliases, "
      << counts->identity_records << " identity records: " << counts->violations << " violations";
  if (printed < counts->violations) out << " (first " << printed << " shown)";
  out << "\n" << std::flush;
  return counts->violations == 0 ? 0 : 1;
}

}  // namespace ecrm
