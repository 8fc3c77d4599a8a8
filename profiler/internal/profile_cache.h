// ProfileCache: a bounded LRU map from profile id to the decoded profile, owned by one shard.
// Not thread-safe: only its shard's thread touches it.
#pragma once

#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "profiler/profile.h"

namespace ecrm {

class ProfileCache {
 public:
  explicit ProfileCache(size_t capacity) : capacity_(capacity) {}

  // The cached profile or nullptr; a hit makes it most recently used.
  Profile* Find(const std::string& id) {
    const auto it = map_.find(id);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
    return it->second.profile.get();
  }

  Profile* Insert(Profile profile) {
    const std::string id = profile.id;
    lru_.push_front(id);
    auto& entry = map_[id];
    entry.profile = std::make_unique<Profile>(std::move(profile));
    entry.lru_pos = lru_.begin();
    return entry.profile.get();
  }

  void Erase(const std::string& id) {
    const auto it = map_.find(id);
    if (it == map_.end()) return;
    lru_.erase(it->second.lru_pos);
    map_.erase(it);
  }

  // Drops every profile whose id satisfies pred(id).
  template <typename Pred>
  void EraseIf(Pred&& pred) {
    for (auto it = lru_.begin(); it != lru_.end();) {
      if (pred(*it)) {
        map_.erase(*it);
        it = lru_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Drops least recently used profiles beyond the capacity. Call only between batches, when no
  // pointer returned by Find/Insert is held.
  void Trim() {
    while (map_.size() > capacity_) {
      map_.erase(lru_.back());
      lru_.pop_back();
    }
  }

  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    std::unique_ptr<Profile> profile;
    std::list<std::string>::iterator lru_pos;
  };
  size_t capacity_;
  std::list<std::string> lru_;
  absl::flat_hash_map<std::string, Entry> map_;
};

}  // namespace ecrm
