// Profile update and serialisation, and the whole shard engine (apply + RocksDB group commit).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <future>

#include "bench/load/event_generator.h"
#include "ingest/collector_parser.h"
#include "profiler/engine.h"
#include "profiler/profile_codec.h"
#include "profiler/profile_json.h"

namespace ecrm {
namespace {

std::vector<Event> Events(int n, uint64_t visitors, uint64_t seed = 1) {
  bench::GeneratorOptions g;
  g.visitors = visitors;
  g.seed = seed;
  bench::EventGenerator gen(g);
  CollectorParser parser{CollectorLimits{}};
  CollectorRequest out;
  std::vector<Event> all;
  while (static_cast<int>(all.size()) < n) {
    // Received an hour after the generator's first event time (inside the accepted window).
    if (parser.Parse(gen.Batch(400), std::nullopt, g.start_time_ms + 3'600'000, out)) std::abort();
    for (auto& e : out.events) all.push_back(std::move(e));
  }
  all.resize(static_cast<size_t>(n));
  return all;
}

Profile BusyProfile() {
  ProfileUpdater updater{ProfilerConfig{}};
  Profile p;
  p.id = "0001-0000000000000001";
  p.AddIdentity("anonymous_id", "anon-1");
  for (auto& e : Events(200, 1)) updater.Apply(p, e);
  return p;
}

void BM_ApplyEvent(benchmark::State& state) {
  ProfileUpdater updater{ProfilerConfig{}};
  const auto events = Events(1000, 1);
  Profile p = BusyProfile();
  size_t i = 0;
  for (auto _ : state) {
    updater.Apply(p, events[i++ % events.size()]);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ApplyEvent);

void BM_EncodeProfile(benchmark::State& state) {
  const Profile p = BusyProfile();
  std::string out;
  for (auto _ : state) {
    EncodeProfile(p, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_EncodeProfile);

void BM_DecodeProfile(benchmark::State& state) {
  std::string bytes;
  EncodeProfile(BusyProfile(), &bytes);
  for (auto _ : state) {
    auto p = DecodeProfile(bytes);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_DecodeProfile);

void BM_RenderPersonalizeJson(benchmark::State& state) {
  const Profile p = BusyProfile();
  ProfileUpdater updater{ProfilerConfig{}};
  std::string out;
  for (auto _ : state) {
    out.clear();
    RenderPersonalizeJson(&p, updater, PersonalizeOptions{}, &out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_RenderPersonalizeJson);

// Events through the shards into RocksDB (WAL on): batches of 100 events, Zipf over 100k visitors.
void BM_EngineThroughput(benchmark::State& state) {
  const std::string dir = std::filesystem::temp_directory_path() / "ecrm-bench-engine";
  std::filesystem::remove_all(dir);
  auto registry = std::make_shared<prometheus::Registry>();
  auto store = *KvStore::Open({.path = dir});
  EngineOptions options;
  options.shards = static_cast<int>(state.range(0));
  auto engine = *ProfileEngine::Create(*store, *registry, options);
  engine->Start();
  const auto events = Events(200000, 100000);
  size_t next = 0;
  constexpr size_t kBatch = 100;
  constexpr int kInFlight = 8;  // requests outstanding, like concurrent HTTP connections
  for (auto _ : state) {
    std::vector<std::future<void>> pending;
    for (int r = 0; r < kInFlight; r++) {
      std::vector<Event> batch;
      for (size_t i = 0; i < kBatch; i++) {
        Event e = events[next++ % events.size()];
        e.message_id += "-" + std::to_string(next);  // unique: nothing deduplicated
        batch.push_back(std::move(e));
      }
      auto done = std::make_shared<std::promise<void>>();
      pending.push_back(done->get_future());
      if (!engine->Submit(std::move(batch), [done](Status) { done->set_value(); }).ok()) {
        std::abort();
      }
    }
    for (auto& f : pending) f.get();
  }
  state.SetItemsProcessed(state.iterations() * kBatch * kInFlight);
  engine.reset();
  store.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_EngineThroughput)->Arg(1)->Arg(2)->UseRealTime()->MinTime(3);

// The retention sweep (ProfileEngine::ExpireInactive) over N profiles of 20 events each: a sweep
// that finds none inactive (the hourly case: every profile decoded once), and, once, the erasure of
// all of them (reported as erase_s).
void BM_RetentionSweep(benchmark::State& state) {
  const std::string dir = std::filesystem::temp_directory_path() / "ecrm-bench-retention";
  std::filesystem::remove_all(dir);
  auto registry = std::make_shared<prometheus::Registry>();
  auto store = *KvStore::Open({.path = dir});
  EngineOptions options;
  options.shards = 2;
  auto engine = *ProfileEngine::Create(*store, *registry, options);
  engine->Start();
  const auto n = static_cast<int>(state.range(0));
  const auto busy = Events(20, 1);
  TimeMs last = 0;
  for (int v = 0; v < n; v += 100) {
    std::vector<Event> batch;
    for (int i = v; i < std::min(n, v + 100); i++) {
      for (const auto& e : busy) {
        Event copy = e;
        copy.anonymous_id = "visitor-" + std::to_string(i);
        copy.user_id.clear();
        copy.message_id += "-" + std::to_string(i);
        last = std::max(last, copy.timestamp);
        batch.push_back(std::move(copy));
      }
    }
    std::promise<void> done;
    if (!engine->Submit(std::move(batch), [&](Status) { done.set_value(); }).ok()) std::abort();
    done.get_future().get();
  }
  for (auto _ : state) {
    auto found = engine->ExpireInactive(0);
    if (!found.ok() || *found != 0) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * n);
  const auto start = std::chrono::steady_clock::now();
  auto erased = engine->ExpireInactive(last + 1);
  if (!erased.ok() || *erased != static_cast<size_t>(n)) std::abort();
  state.counters["erase_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  engine.reset();
  store.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RetentionSweep)->Arg(100000)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ecrm
