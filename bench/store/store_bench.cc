// RocksDB through KvStore: the group-commit write of dirty profiles, and point reads.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "store/keys.h"
#include "store/kv_store.h"

namespace ecrm {
namespace {

std::string Dir(const char* name) {
  const auto d = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(d);
  return d;
}

void BM_WriteBatchOfProfiles(benchmark::State& state) {
  const std::string dir = Dir("ecrm-bench-store-w");
  auto store = *KvStore::Open({.path = dir});
  const std::string value(static_cast<size_t>(state.range(1)), 'v');
  std::mt19937_64 rng(1);
  const int per_batch = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto batch = store->NewBatch();
    for (int i = 0; i < per_batch; i++) {
      batch.Put(Cf::kProfiles, MakeProfileId(static_cast<uint32_t>(i % 64), rng() % 1'000'000),
                value);
    }
    if (!store->Write(batch).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations() * per_batch);
  store.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_WriteBatchOfProfiles)->Args({1, 600})->Args({100, 600})->Args({1000, 600});

void BM_GetProfile(benchmark::State& state) {
  const std::string dir = Dir("ecrm-bench-store-r");
  auto store = *KvStore::Open({.path = dir});
  const std::string value(600, 'v');
  constexpr uint64_t kKeys = 200000;
  for (uint64_t k = 0; k < kKeys; k += 1000) {
    auto batch = store->NewBatch();
    for (uint64_t i = k; i < k + 1000; i++) batch.Put(Cf::kProfiles, MakeProfileId(1, i), value);
    if (!store->Write(batch).ok()) std::abort();
  }
  if (!store->CompactAll().ok()) std::abort();
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    auto v = store->Get(Cf::kProfiles, MakeProfileId(1, rng() % kKeys));
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
  store.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_GetProfile);

}  // namespace
}  // namespace ecrm
