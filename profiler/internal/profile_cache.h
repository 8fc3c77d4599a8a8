// ProfileCache: a bounded LRU map from profile id to the decoded profile, owned by one shard. It is
// bounded both by count and by bytes (Profile::MemoryBytes, noted when a profile enters and when
// the shard reweighs one it changed). Not thread-safe: only its shard's thread touches it.
#pragma once

#include <limits>
#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "profiler/profile.h"

namespace ecrm {

class ProfileCache {
 public:
  explicit ProfileCache(size_t capacity, size_t max_bytes = std::numeric_limits<size_t>::max())
      : capacity_(capacity), max_bytes_(max_bytes) {}

  // The cached profile or nullptr; a hit makes it most recently used.
  Profile* Find(const std::string& id) {
    const auto it = map_.find(id);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
    return it->second.profile.get();
  }

  Profile* Insert(Profile profile) {
    const std::string id = profile.id;
    if (map_.contains(id)) Erase(id);
    lru_.push_front(id);
    auto& entry = map_[id];
    entry.profile = std::make_unique<Profile>(std::move(profile));
    entry.lru_pos = lru_.begin();
    entry.bytes = entry.profile->MemoryBytes();
    bytes_ += entry.bytes;
    return entry.profile.get();
  }

  // Notes the size of a cached profile that was changed (call after the change, before Trim).
  void Reweigh(const std::string& id) {
    const auto it = map_.find(id);
    if (it == map_.end()) return;
    bytes_ -= it->second.bytes;
    it->second.bytes = it->second.profile->MemoryBytes();
    bytes_ += it->second.bytes;
  }

  void Erase(const std::string& id) {
    const auto it = map_.find(id);
    if (it == map_.end()) return;
    bytes_ -= it->second.bytes;
    lru_.erase(it->second.lru_pos);
    map_.erase(it);
  }

  // Drops every profile whose id satisfies pred(id).
  template <typename Pred>
  void EraseIf(Pred&& pred) {
    for (auto it = lru_.begin(); it != lru_.end();) {
      if (pred(*it)) {
        const auto entry = map_.find(*it);
        bytes_ -= entry->second.bytes;
        map_.erase(entry);
        it = lru_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Drops least recently used profiles beyond the capacity or the byte bound. Call only between
  // batches, when no pointer returned by Find/Insert is held.
  void Trim() {
    while (map_.size() > capacity_ || (bytes_ > max_bytes_ && !map_.empty())) {
      const auto entry = map_.find(lru_.back());
      bytes_ -= entry->second.bytes;
      map_.erase(entry);
      lru_.pop_back();
    }
  }

  size_t size() const { return map_.size(); }
  size_t bytes() const { return bytes_; }  // as last weighed

 private:
  struct Entry {
    std::unique_ptr<Profile> profile;
    std::list<std::string>::iterator lru_pos;
    size_t bytes = 0;
  };
  size_t capacity_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::list<std::string> lru_;
  absl::flat_hash_map<std::string, Entry> map_;
};

}  // namespace ecrm
