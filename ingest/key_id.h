// KeyId: a stable, non-secret name for a write key, for places that must tell keys apart without
// holding the key itself (Event::source, the Kafka envelope's "ecrm" field, logs). Pure,
// thread-safe.
#pragma once

#include <xxhash.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace ecrm {

// 16 lowercase hex digits of XXH3-64 of the key. Not a cryptographic hash: a generated key (128
// random bits) cannot be recovered from it, but a short hand-picked key could be guessed offline,
// so the id is shown only where the key's owner may see it.
inline std::string KeyId(std::string_view key) {
  const XXH64_hash_t h = XXH3_64bits(key.data(), key.size());
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 16);
}

}  // namespace ecrm
