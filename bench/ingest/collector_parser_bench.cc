// Parsing and validating collector requests: the per-event CPU cost on the HTTP thread.
#include <benchmark/benchmark.h>

#include "bench/load/event_generator.h"
#include "ingest/collector_parser.h"

namespace ecrm {
namespace {

// An hour after the generator's first event time: inside the accepted window around receipt.
const TimeMs kReceivedAt = bench::GeneratorOptions{}.start_time_ms + 3'600'000;

void BM_ParseBatch(benchmark::State& state) {
  bench::EventGenerator gen({});
  const std::string body = gen.Batch(static_cast<int>(state.range(0)));
  CollectorLimits limits;
  limits.max_request_bytes = 4 << 20;  // room for the 2,000-event batch
  CollectorParser parser{limits};
  CollectorRequest out;
  for (auto _ : state) {
    auto r = parser.Parse(body, std::nullopt, kReceivedAt, out);
    if (r) state.SkipWithError(r->message.c_str());
    benchmark::DoNotOptimize(out.events.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_ParseBatch)->Arg(1)->Arg(100)->Arg(2000);

void BM_ParseSingleEvent(benchmark::State& state) {
  bench::EventGenerator gen({});
  std::string body = gen.Batch(1);  // the body of a /v1/batch with one event
  body = body.substr(body.find("[{") + 1, body.rfind("}]") - body.find("[{"));  // just the event
  CollectorParser parser{CollectorLimits{}};
  CollectorRequest out;
  for (auto _ : state) {
    auto r = parser.Parse(body, EventType::kPage, kReceivedAt, out);
    if (r) state.SkipWithError(r->message.c_str());
    benchmark::DoNotOptimize(out.events.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_ParseSingleEvent);

}  // namespace
}  // namespace ecrm
