#include "profiler/graph_check.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/murmur2.h"
#include "profiler/profile_codec.h"
#include "store/keys.h"

namespace ecrm {
namespace {

using Kind = GraphViolation::Kind;

// Longer chains are reported as broken. Each merge adds at most one hop, and the shards repoint
// identifiers to the survivor, so real chains are a few hops long.
constexpr size_t kMaxAliasHops = 1000;

// `s` as one line of printable ASCII: other bytes, '"' and '\' as \xNN.
std::string Printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(ch);
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string Quoted(std::string_view s) { return "\"" + Printable(s) + "\""; }

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// "<pppp>-<16 lower-case hex>" with pppp < partitions.
bool WellFormedProfileId(std::string_view id, uint32_t partitions) {
  if (id.size() != 21 || id[4] != '-') return false;
  for (size_t i = 0; i < id.size(); i++) {
    if (i != 4 && !IsLowerHex(id[i])) return false;
  }
  const auto partition = PartitionOfProfileId(id);
  return partition.has_value() && *partition < partitions;
}

struct IdentityKeyParts {
  uint32_t partition = 0;
  std::string_view type;
  std::string_view value;
};

// "<pppp>|<type>:<value>" with a non-empty type and value; the type ends at the first ':'.
std::optional<IdentityKeyParts> ParseIdentityKey(std::string_view key) {
  if (key.size() < 8 || key[4] != '|') return std::nullopt;
  IdentityKeyParts parts;
  for (size_t i = 0; i < 4; i++) {
    if (!IsLowerHex(key[i])) return std::nullopt;
    const char c = key[i];
    parts.partition =
        parts.partition * 16 + static_cast<uint32_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  const std::string_view rest = key.substr(5);
  const size_t colon = rest.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
    return std::nullopt;
  }
  parts.type = rest.substr(0, colon);
  parts.value = rest.substr(colon + 1);
  return parts;
}

// Where following alias records from one id leads.
struct Chain {
  enum class End { kProfile, kMissing, kCycle, kTooLong };
  End end = End::kMissing;
  // The ids visited, the start first. kProfile and kMissing: the last one is the profile found
  // or missing. kCycle: path[cycle_start..] is the cycle.
  std::vector<std::string> path;
  size_t cycle_start = 0;
  std::string value;  // kProfile: the stored (non-alias) value

  const std::string& last() const { return path.back(); }
  // "a -> b -> c"; a cycle repeats its first member at the end.
  std::string Text() const {
    std::string out;
    for (const auto& id : path) {
      if (!out.empty()) out += " -> ";
      out += Printable(id);
    }
    if (end == End::kCycle) out += " -> " + Printable(path[cycle_start]);
    return out;
  }
  // Why the chain leads to no profile, completing "... points at <start>, ".
  std::string Broken() const {
    switch (end) {
      case End::kMissing:
        if (path.size() == 1) return "which does not exist";
        return "whose alias chain " + Text() + " ends at a missing profile";
      case End::kCycle:
        return "whose alias chain " + Text() + " is a cycle";
      case End::kTooLong:
        return "whose alias chain is longer than " + std::to_string(kMaxAliasHops) + " hops";
      case End::kProfile:
        break;
    }
    return "";
  }
};

StatusOr<Chain> Follow(const KvStore& store, std::string id) {
  Chain chain;
  for (;;) {
    const auto seen = std::find(chain.path.begin(), chain.path.end(), id);
    if (seen != chain.path.end()) {
      chain.end = Chain::End::kCycle;
      chain.cycle_start = static_cast<size_t>(seen - chain.path.begin());
      return chain;
    }
    if (chain.path.size() > kMaxAliasHops) {
      chain.end = Chain::End::kTooLong;
      return chain;
    }
    chain.path.push_back(id);
    ASSIGN_OR_RETURN(std::optional<std::string> value, store.Get(Cf::kProfiles, id));
    if (!value.has_value()) {
      chain.end = Chain::End::kMissing;
      return chain;
    }
    std::optional<std::string> next = DecodeAlias(*value);
    if (!next.has_value()) {
      chain.end = Chain::End::kProfile;
      chain.value = std::move(*value);
      return chain;
    }
    id = std::move(*next);
  }
}

// One run of the check: the sink, the partition count and the counts.
class Checker {
 public:
  Checker(const KvStore& store, const std::function<void(const GraphViolation&)>& sink,
          uint32_t partitions)
      : store_(store), sink_(sink), partitions_(partitions) {}

  // Invariants 1-3, for each identity record.
  Status CheckIdentity(std::string_view key, std::string_view value) {
    if (IsErasureKey(key)) {
      counts_.erased++;
      if (value.size() != 8) {
        Report(Kind::kMalformedIdentityKey,
               "erasure ledger entry " + Quoted(key) + ": the value is not an 8-byte time");
      }
      return absl::OkStatus();
    }
    counts_.identity_records++;
    const auto parts = ParseIdentityKey(key);
    if (!parts.has_value()) {
      Report(Kind::kMalformedIdentityKey,
             "identity " + Quoted(key) + ": malformed key (expected <pppp>|<type>:<value>)");
      return absl::OkStatus();
    }
    const uint32_t expected = PartitionForKey(parts->value, partitions_);
    if (parts->partition != expected) {
      Report(Kind::kWrongIdentityPartition,
             "identity " + Quoted(key) + ": in partition " + std::string(key.substr(0, 4)) +
                 ", but the value's partition is " + PartitionPrefix(expected).substr(0, 4) +
                 " of " + std::to_string(partitions_));
    }
    const IdentityRecord record = DecodeIdentityRecord(value);
    ASSIGN_OR_RETURN(const Chain chain, Follow(store_, record.profile_id));
    if (chain.end != Chain::End::kProfile) {
      Report(Kind::kDanglingIdentity, "identity " + Quoted(key) + ": points at profile " +
                                          Printable(record.profile_id) + ", " + chain.Broken());
      return absl::OkStatus();
    }
    auto profile = DecodeProfile(chain.value);
    if (!profile.ok()) return absl::OkStatus();  // reported with the profile
    if (!profile->HasIdentity(std::string(parts->type), std::string(parts->value))) {
      Report(Kind::kIdentityNotListed,
             "identity " + Quoted(key) + ": leads to profile " +
                 (chain.path.size() > 1 ? "(via " + chain.Text() + ") " : std::string()) +
                 Printable(chain.last()) + ", which does not list " + Printable(parts->type) + ":" +
                 Printable(parts->value));
    }
    return absl::OkStatus();
  }

  // Invariants 4-6, for each `profiles` record.
  Status CheckProfileRecord(std::string_view key, std::string_view value) {
    const std::optional<std::string> target = DecodeAlias(value);
    if (target.has_value()) {
      counts_.aliases++;
    } else {
      counts_.profiles++;
    }
    const std::string id(key);
    if (!WellFormedProfileId(key, partitions_)) {
      Report(Kind::kMalformedProfileKey,
             "profile " + Quoted(key) + ": malformed key (expected <pppp>-<16 hex> with pppp < " +
                 std::to_string(partitions_) + ")");
    }
    if (target.has_value()) return CheckAlias(id);
    auto profile = DecodeProfile(value);
    if (!profile.ok()) {
      Report(Kind::kUndecodableProfile, "profile " + Printable(id) + ": cannot be decoded (" +
                                            std::string(profile.status().message()) + ")");
      return absl::OkStatus();
    }
    if (profile->id != id) {
      Report(Kind::kProfileIdMismatch,
             "profile " + Printable(id) + ": holds the id " + Quoted(profile->id));
    }
    for (const auto& [type, values] : profile->identities) {
      for (const auto& v : values) RETURN_IF_ERROR(CheckListedIdentity(id, type, v));
    }
    for (const auto& merged : profile->merged_ids) RETURN_IF_ERROR(CheckMergedId(id, merged));
    return absl::OkStatus();
  }

  const GraphCheckCounts& counts() const { return counts_; }

 private:
  void Report(Kind kind, std::string message) {
    counts_.violations++;
    sink_(GraphViolation{kind, std::move(message)});
  }

  // 5: the alias's target exists, and the chain is no cycle. A cycle is reported once, by its
  // smallest member; aliases leading into it are not reported again.
  Status CheckAlias(const std::string& id) {
    ASSIGN_OR_RETURN(const Chain chain, Follow(store_, id));
    if (chain.end == Chain::End::kMissing && chain.path.size() == 2) {
      Report(Kind::kAliasToMissing,
             "alias " + Printable(id) + ": points at missing profile " + Printable(chain.last()));
    } else if (chain.end == Chain::End::kCycle && chain.cycle_start == 0 &&
               id == *std::min_element(chain.path.begin(), chain.path.end())) {
      Report(Kind::kAliasCycle, "alias " + Printable(id) + ": alias cycle " + chain.Text());
    } else if (chain.end == Chain::End::kTooLong) {
      Report(Kind::kAliasCycle, "alias " + Printable(id) + ": alias chain longer than " +
                                    std::to_string(kMaxAliasHops) + " hops");
    }
    return absl::OkStatus();
  }

  // 4: the identifier's record leads to this profile.
  Status CheckListedIdentity(const std::string& id, const std::string& type,
                             const std::string& value) {
    const std::string key = IdentityKey(PartitionForKey(value, partitions_), type, value);
    const std::string identifier = Printable(type) + ":" + Printable(value);
    ASSIGN_OR_RETURN(const std::optional<std::string> record, store_.Get(Cf::kIdentities, key));
    if (!record.has_value()) {
      Report(Kind::kListedWithoutRecord, "profile " + Printable(id) + ": lists " + identifier +
                                             ", which has no identity record " + Quoted(key));
      return absl::OkStatus();
    }
    const IdentityRecord decoded = DecodeIdentityRecord(*record);
    if (decoded.profile_id == id) return absl::OkStatus();
    ASSIGN_OR_RETURN(const Chain chain, Follow(store_, decoded.profile_id));
    // A broken chain is reported with the identity record.
    if (chain.end != Chain::End::kProfile || chain.last() == id) return absl::OkStatus();
    auto other = DecodeProfile(chain.value);
    if (other.ok() && other->HasIdentity(type, value)) {
      Report(Kind::kListedTwice, "profile " + Printable(id) + ": " + identifier +
                                     " is listed by two live profiles, " + Printable(id) + " and " +
                                     Printable(chain.last()) + " (its record " + Quoted(key) +
                                     " leads to " + Printable(chain.last()) + ")");
    } else {
      Report(Kind::kListedElsewhere, "profile " + Printable(id) + ": lists " + identifier +
                                         ", but its record " + Quoted(key) + " leads to profile " +
                                         Printable(chain.last()));
    }
    return absl::OkStatus();
  }

  // 6: a merged id is an alias whose chain ends at this profile.
  Status CheckMergedId(const std::string& id, const std::string& merged) {
    ASSIGN_OR_RETURN(const Chain chain, Follow(store_, merged));
    const std::string prefix =
        "profile " + Printable(id) + ": lists merged id " + Printable(merged) + ", ";
    if (chain.end == Chain::End::kProfile) {
      if (chain.path.size() == 1) {
        Report(Kind::kBadMergedId, prefix + "which is a profile, not an alias");
      } else if (chain.last() != id) {
        Report(Kind::kBadMergedId,
               prefix + "whose alias chain " + chain.Text() + " ends at another profile");
      }
      return absl::OkStatus();
    }
    Report(Kind::kBadMergedId, prefix + chain.Broken());
    return absl::OkStatus();
  }

  const KvStore& store_;
  const std::function<void(const GraphViolation&)>& sink_;
  const uint32_t partitions_;
  GraphCheckCounts counts_;
};

// Scans `cf` in key order, calling fn(key, value) -> Status; stops at the first error.
template <typename Fn>
Status ScanAll(const KvStore& store, Cf cf, Fn&& fn) {
  Status failed;
  RETURN_IF_ERROR(store.Scan(cf, "", [&](std::string_view key, std::string_view value) {
    failed = fn(key, value);
    return failed.ok();
  }));
  return failed;
}

}  // namespace

StatusOr<GraphCheckCounts> CheckIdentityGraph(
    const KvStore& store, const std::function<void(const GraphViolation&)>& sink) {
  ASSIGN_OR_RETURN(const std::optional<std::string> stored,
                   store.Get(Cf::kMeta, kMetaPartitionCount));
  uint32_t partitions = 0;
  if (!stored.has_value() || !absl::SimpleAtoi(*stored, &partitions) || partitions == 0 ||
      partitions > 65535) {
    return absl::FailedPreconditionError(
        stored.has_value() ? "meta/partition_count is invalid: " + Quoted(*stored)
                           : "meta/partition_count is missing (not an ecrm data dir?)");
  }
  Checker checker(store, sink, partitions);
  RETURN_IF_ERROR(ScanAll(store, Cf::kIdentities, [&](std::string_view k, std::string_view v) {
    return checker.CheckIdentity(k, v);
  }));
  RETURN_IF_ERROR(ScanAll(store, Cf::kProfiles, [&](std::string_view k, std::string_view v) {
    return checker.CheckProfileRecord(k, v);
  }));
  return checker.counts();
}

}  // namespace ecrm
