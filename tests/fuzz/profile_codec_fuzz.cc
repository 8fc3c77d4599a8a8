// The profile value format (profiler/profile_codec.h) on corrupt or hostile bytes, as read from
// the profiles column family or a restored changelog: DecodeProfile fails with DataLoss or gives
// a profile whose encoding decodes again to the same encoding (encode, decode, encode: identical
// bytes). Alias records likewise.
#include <string>

#include "profiler/profile_codec.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecrm;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto alias = DecodeAlias(input)) {
    FUZZ_CHECK(DecodeAlias(EncodeAlias(*alias)) == alias, "an alias does not round-trip");
  }
  auto decoded = DecodeProfile(input);
  if (!decoded.ok()) {
    FUZZ_CHECK(absl::IsDataLoss(decoded.status()), "%s", decoded.status().ToString().c_str());
    return 0;
  }
  std::string once;
  EncodeProfile(*decoded, &once);
  auto again = DecodeProfile(once);
  FUZZ_CHECK(again.ok(), "a re-encoded profile does not decode: %s",
             again.status().ToString().c_str());
  std::string twice;
  EncodeProfile(*again, &twice);
  FUZZ_CHECK(once == twice, "a profile does not round-trip (%zu vs %zu bytes)", once.size(),
             twice.size());
  return 0;
}
