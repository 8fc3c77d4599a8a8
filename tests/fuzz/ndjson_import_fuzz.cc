// Profile import records (POST /v1/profiles/import, the ecrm.profiles topic): the input is an
// NDJSON body, split into lines as ProfileImport does, each line parsed by ProfileRecordParser. A
// record parses into an identify event of its channel with an identifier, or fails with a code and
// a message (status 400).
#include <cctype>
#include <string>

#include "ingest/profile_record.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecrm;
  static auto* parser = new ProfileRecordParser(ProfileRecordOptions{});
  std::string_view body(reinterpret_cast<const char*>(data), size);
  while (!body.empty()) {
    const size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    if (line.empty()) continue;
    Event e;
    Rejection rejection;
    if (parser->Parse(line, 1'790'000'000'000, e, rejection)) {
      FUZZ_CHECK(e.type == EventType::kIdentify, "type %d", static_cast<int>(e.type));
      FUZZ_CHECK(!e.channel.empty() && e.channel.size() <= 64, "channel %s", e.channel.c_str());
      FUZZ_CHECK(!e.RoutingKey().empty(), "a record without identifier");
      for (const auto& [type, value] : e.identifiers) {
        FUZZ_CHECK(parser->options().KnownType(type), "identifier type %s", type.c_str());
        FUZZ_CHECK(!value.empty(), "an empty %s", type.c_str());
      }
    } else {
      FUZZ_CHECK(rejection.http_status == 400, "status %d", rejection.http_status);
      FUZZ_CHECK(!rejection.code.empty() && !rejection.message.empty(), "a bare rejection");
    }
  }
  return 0;
}
