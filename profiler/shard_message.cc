#include "profiler/shard_message.h"

#include <tuple>
#include <type_traits>

#include "common/logging.h"
#include "profiler/internal/wire.h"
#include "store/keys.h"

namespace ecrm {
namespace {

// Each type's fields in wire order. One list serves both directions, so encoder and decoder cannot
// disagree. (Encode reads through a const_cast; nothing is written.)
auto Tie(ProductRef& p) { return std::tie(p.product_id, p.name, p.category, p.price, p.has_price); }
auto Tie(Touch& t) {
  return std::tie(t.source, t.medium, t.campaign, t.term, t.content, t.referrer, t.at);
}
auto Tie(DeviceInfo& d) { return std::tie(d.type, d.os, d.browser, d.library); }
auto Tie(Event& e) {
  return std::tie(e.type, e.message_id, e.anonymous_id, e.user_id, e.event, e.name, e.previous_id,
                  e.group_id, e.timestamp, e.received_at, e.client_time, e.traits, e.email,
                  e.properties, e.products, e.revenue, e.has_revenue, e.touch, e.device,
                  e.identifiers, e.channel, e.source, e.message_hash, e.trusted,
                  e.user_hash_valid);  // user_hash is cleared before an event reaches a shard
}
auto Tie(msg::MergeLink& m) {
  return std::tie(m.survivor, m.loser, m.link, m.at, m.message_id, m.explicit_link, m.claimer);
}
auto Tie(msg::RouteEvent& m) { return std::tie(m.partition, m.event); }
auto Tie(msg::ApplyEvent& m) { return std::tie(m.profile_id, m.event); }
auto Tie(msg::ClaimIdentity& m) {
  return std::tie(m.partition, m.type, m.value, m.profile_id, m.at, m.message_id, m.explicit_link,
                  m.link_only, m.verified);
}
auto Tie(msg::AttachIdentity& m) { return std::tie(m.profile_id, m.type, m.value); }
auto Tie(msg::SourceOffset& m) { return std::tie(m.partition, m.offset); }
auto Tie(msg::MergeCheck& m) { return std::tie(m.merge); }
auto Tie(msg::MergeSend& m) { return std::tie(m.merge, m.survivor_limited); }
auto Tie(msg::MergeAbsorb& m) {
  return std::tie(m.survivor, m.loser, m.link, m.at, m.message_id, m.loser_profile);
}
auto Tie(msg::MergeDone& m) { return std::tie(m.loser); }
auto Tie(msg::RepointIdentity& m) { return std::tie(m.partition, m.type, m.value, m.to, m.from); }
auto Tie(msg::DetachIdentity& m) {
  return std::tie(m.profile_id, m.type, m.value, m.taken_by, m.at, m.message_id);
}
auto Tie(msg::RecordRefusal& m) {
  return std::tie(m.profile_id, m.holder, m.link, m.at, m.message_id, m.reason);
}
auto Tie(msg::DeleteProfile& m) { return std::tie(m.profile_id); }
auto Tie(msg::DeleteIdentity& m) { return std::tie(m.partition, m.type, m.value, m.holders); }
auto Tie(msg::DeleteAlias& m) { return std::tie(m.alias_id); }
auto Tie(msg::InternalOffset& m) { return std::tie(m.partition, m.offset); }

// The fields version 2 added, after those of version 1 (a version 1 message leaves them at their
// defaults): the erasure ledger's times and the events' consent.
auto TieV2(Event& e) { return std::tie(e.consent); }
auto TieV2(msg::DeleteProfile& m) { return std::tie(m.erased_at, m.inactive_before); }
auto TieV2(msg::DeleteIdentity& m) { return std::tie(m.erased_at); }

template <class T>
concept Tied = requires(T& t) {
  Tie(t);
};
template <class T>
concept TiedV2 = requires(T& t) {
  TieV2(t);
};

template <class T>
void Put(wire::Writer& w, const T& v, uint8_t version);
template <class T>
void Get(wire::Reader& r, T& v, uint8_t version);

template <class T>
void Put(wire::Writer& w, const T& v, uint8_t version) {
  if constexpr (std::is_same_v<T, std::string>) {
    w.Str(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    w.Varint(v ? 1 : 0);
  } else if constexpr (std::is_same_v<T, double>) {
    w.Double(v);
  } else if constexpr (std::is_same_v<T, EventType>) {
    w.Varint(static_cast<uint64_t>(v));
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    w.Signed(v);
  } else if constexpr (std::is_integral_v<T>) {
    w.Varint(v);
  } else if constexpr (requires {
                         v.first;
                         v.second;
                       }) {
    Put(w, v.first, version);
    Put(w, v.second, version);
  } else if constexpr (requires {
                         v.size();
                         v.begin();
                       }) {
    w.Varint(v.size());
    for (const auto& x : v) Put(w, x, version);
  } else {
    static_assert(Tied<T>);
    std::apply([&](const auto&... f) { (Put(w, f, version), ...); }, Tie(const_cast<T&>(v)));
    if constexpr (TiedV2<T>) {
      if (version >= 2) {
        std::apply([&](const auto&... f) { (Put(w, f, version), ...); }, TieV2(const_cast<T&>(v)));
      }
    }
  }
}

template <class T>
void Get(wire::Reader& r, T& v, uint8_t version) {
  if constexpr (std::is_same_v<T, std::string>) {
    v = r.Str();
  } else if constexpr (std::is_same_v<T, bool>) {
    v = r.Varint() != 0;
  } else if constexpr (std::is_same_v<T, double>) {
    v = r.Double();
  } else if constexpr (std::is_same_v<T, EventType>) {
    const uint64_t x = r.Varint();
    v = x <= static_cast<uint64_t>(EventType::kMerge) ? static_cast<EventType>(x)
                                                      : static_cast<EventType>(r.Fail());
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    v = static_cast<T>(r.Signed());
  } else if constexpr (std::is_integral_v<T>) {
    v = static_cast<T>(r.Varint());
  } else if constexpr (requires {
                         v.first;
                         v.second;
                       }) {
    Get(r, v.first, version);
    Get(r, v.second, version);
  } else if constexpr (requires {
                         v.size();
                         v.emplace_back();
                       }) {
    const uint64_t n = r.Count();
    v.clear();
    for (uint64_t i = 0; i < n && r.ok(); i++) Get(r, v.emplace_back(), version);
  } else {
    static_assert(Tied<T>);
    std::apply([&](auto&... f) { (Get(r, f, version), ...); }, Tie(v));
    if constexpr (TiedV2<T>) {
      if (version >= 2) std::apply([&](auto&... f) { (Get(r, f, version), ...); }, TieV2(v));
    }
  }
}

template <class M>
bool TryDecode(uint8_t code, uint8_t version, wire::Reader& r, std::optional<ShardMessage>& out) {
  if (code != M::kCode) return false;
  M m;
  Get(r, m, version);
  out.emplace(std::move(m));
  return true;
}

template <class... M>
std::optional<ShardMessage> DecodeKind(uint8_t code, uint8_t version, wire::Reader& r,
                                       std::variant<M...>*) {
  std::optional<ShardMessage> out;
  (TryDecode<M>(code, version, r, out) || ...);
  return out;
}

// Every kind's code is distinct (a decoder tells them apart by it alone).
template <class... M>
constexpr bool DistinctCodes(std::variant<M...>*) {
  const uint8_t codes[] = {M::kCode...};
  for (size_t i = 0; i < sizeof...(M); i++) {
    for (size_t j = i + 1; j < sizeof...(M); j++) {
      if (codes[i] == codes[j]) return false;
    }
  }
  return true;
}
static_assert(DistinctCodes(static_cast<ShardMessage*>(nullptr)));

}  // namespace

uint32_t ProfilePartition(std::string_view profile_id) {
  const auto partition = PartitionOfProfileId(profile_id);
  ECRM_CHECK(partition.has_value());  // ids come from MakeProfileId
  return *partition;
}

uint32_t DestinationPartition(const ShardMessage& m) {
  struct Visitor {
    uint32_t operator()(const msg::RouteEvent& x) const { return x.partition; }
    uint32_t operator()(const msg::ApplyEvent& x) const { return ProfilePartition(x.profile_id); }
    uint32_t operator()(const msg::ClaimIdentity& x) const { return x.partition; }
    uint32_t operator()(const msg::AttachIdentity& x) const {
      return ProfilePartition(x.profile_id);
    }
    uint32_t operator()(const msg::SourceOffset& x) const { return x.partition; }
    uint32_t operator()(const msg::MergeCheck& x) const {
      return ProfilePartition(x.merge.survivor);
    }
    uint32_t operator()(const msg::MergeSend& x) const { return ProfilePartition(x.merge.loser); }
    uint32_t operator()(const msg::MergeAbsorb& x) const { return ProfilePartition(x.survivor); }
    uint32_t operator()(const msg::MergeDone& x) const { return ProfilePartition(x.loser); }
    uint32_t operator()(const msg::RepointIdentity& x) const { return x.partition; }
    uint32_t operator()(const msg::DetachIdentity& x) const {
      return ProfilePartition(x.profile_id);
    }
    uint32_t operator()(const msg::RecordRefusal& x) const {
      return ProfilePartition(x.profile_id);
    }
    uint32_t operator()(const msg::DeleteProfile& x) const {
      return ProfilePartition(x.profile_id);
    }
    uint32_t operator()(const msg::DeleteIdentity& x) const { return x.partition; }
    uint32_t operator()(const msg::DeleteAlias& x) const { return ProfilePartition(x.alias_id); }
    uint32_t operator()(const msg::InternalOffset& x) const { return x.partition; }
  };
  return std::visit(Visitor{}, m);
}

const char* MessageName(const ShardMessage& m) {
  static constexpr const char* kNames[] = {
      "RouteEvent",    "ApplyEvent",      "ClaimIdentity",  "AttachIdentity",
      "SourceOffset",  "MergeCheck",      "MergeSend",      "MergeAbsorb",
      "MergeDone",     "RepointIdentity", "DetachIdentity", "RecordRefusal",
      "DeleteProfile", "DeleteIdentity",  "DeleteAlias",    "InternalOffset"};
  static_assert(std::size(kNames) == std::variant_size_v<ShardMessage>);
  return kNames[m.index()];
}

namespace {

// The oldest version that holds `m`: messages without the fields of version 2 are written as
// version 1, which instances not yet upgraded read (a rolling upgrade shares the internal topic).
struct VersionVisitor {
  uint8_t operator()(const msg::RouteEvent& x) const { return x.event.consent.empty() ? 1 : 2; }
  uint8_t operator()(const msg::ApplyEvent& x) const { return x.event.consent.empty() ? 1 : 2; }
  uint8_t operator()(const msg::DeleteProfile& x) const {
    return x.erased_at == 0 && x.inactive_before == 0 ? 1 : 2;
  }
  uint8_t operator()(const msg::DeleteIdentity& x) const { return x.erased_at == 0 ? 1 : 2; }
  template <class M>
  uint8_t operator()(const M&) const {
    return 1;
  }
};
uint8_t VersionFor(const ShardMessage& m) { return std::visit(VersionVisitor{}, m); }

}  // namespace

void EncodeShardMessage(const ShardMessage& m, std::string* out) {
  out->clear();
  const uint8_t version = VersionFor(m);
  out->push_back(static_cast<char>(version));
  std::visit(
      [&](const auto& x) {
        out->push_back(static_cast<char>(std::decay_t<decltype(x)>::kCode));
        wire::Writer w(out);
        Put(w, x, version);
      },
      m);
}

StatusOr<ShardMessage> DecodeShardMessage(std::string_view data) {
  if (data.size() < 2) return absl::DataLossError("shard message: truncated");
  const auto version = static_cast<uint8_t>(data[0]);
  if (version < 1 || version > kShardMessageVersion) {
    return absl::DataLossError("shard message: unknown version " + std::to_string(version));
  }
  const auto code = static_cast<uint8_t>(data[1]);
  wire::Reader r(data.substr(2));
  auto decoded = DecodeKind(code, version, r, static_cast<ShardMessage*>(nullptr));
  if (!decoded) {
    return absl::DataLossError("shard message: unknown kind " + std::to_string(code));
  }
  if (!r.ok() || !r.AtEnd()) return absl::DataLossError("shard message: truncated or corrupt");
  return *std::move(decoded);
}

void EncodeEvent(const Event& e, std::string* out) {
  out->clear();
  wire::Writer w(out);
  Put(w, e, kShardMessageVersion);
}

StatusOr<Event> DecodeEvent(std::string_view data) {
  wire::Reader r(data);
  Event e;
  Get(r, e, kShardMessageVersion);
  if (!r.ok() || !r.AtEnd()) return absl::DataLossError("event: truncated or corrupt");
  return e;
}

std::string EncodePendingMerge(const msg::MergeAbsorb& absorb) {
  std::string out;
  for (const std::string* part :
       {&absorb.survivor, &absorb.loser, &absorb.link, &absorb.message_id, &absorb.loser_profile}) {
    PutFixed64(&out, part->size());
    out.append(*part);
  }
  PutFixed64(&out, static_cast<uint64_t>(absorb.at));
  return out;
}

std::optional<msg::MergeAbsorb> DecodePendingMerge(std::string_view value) {
  msg::MergeAbsorb absorb;
  for (std::string* part :
       {&absorb.survivor, &absorb.loser, &absorb.link, &absorb.message_id, &absorb.loser_profile}) {
    if (value.size() < 8) return std::nullopt;
    const uint64_t n = DecodeFixed64(value.data());
    value.remove_prefix(8);
    if (n > value.size()) return std::nullopt;
    part->assign(value.substr(0, n));
    value.remove_prefix(n);
  }
  if (value.size() != 8) return std::nullopt;
  absorb.at = static_cast<TimeMs>(DecodeFixed64(value.data()));
  return absorb;
}

}  // namespace ecrm
