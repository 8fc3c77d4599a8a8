#include "ingest/identity_trust.h"

// OpenSSL (libcrypto) is used because none of the project's other libraries (abseil, RocksDB,
// xxhash, ...) implements HMAC-SHA256 or a constant-time compare.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/status.h"

namespace ecrm {

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  const unsigned char* out =
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &mac_len);
  ECRM_CHECK(out != nullptr && mac_len == 32);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * mac_len, '0');
  for (unsigned int i = 0; i < mac_len; i++) {
    hex[2 * i] = kHex[mac[i] >> 4];
    hex[2 * i + 1] = kHex[mac[i] & 0xf];
  }
  OPENSSL_cleanse(mac, sizeof(mac));
  return hex;
}

IdentityTrust::IdentityTrust(std::string secret) : secret_(std::move(secret)) {}

IdentityTrust::~IdentityTrust() { OPENSSL_cleanse(secret_.data(), secret_.size()); }

bool IdentityTrust::VerifyUserHash(std::string_view user_id, std::string_view user_hash) const {
  if (secret_.empty() || user_id.empty() || user_hash.size() != 64) return false;
  const std::string expected = HmacSha256Hex(secret_, user_id);
  return CRYPTO_memcmp(expected.data(), user_hash.data(), expected.size()) == 0;
}

void IdentityTrust::Mark(const WriteKeyInfo& key, CollectorRequest& request) const {
  const bool server = key.kind == WriteKeyKind::kServer;
  for (auto& event : request.events) {
    event.source = key.id;
    event.trusted = server;
    event.user_hash_valid = !server && VerifyUserHash(event.user_id, event.user_hash);
    event.user_hash.clear();
  }
  // One raw message per event, in the same order (CollectorParser::KeepRaw).
  ECRM_CHECK(request.raw.empty() || request.raw.size() == request.events.size());
  for (size_t i = 0; i < request.raw.size(); i++) {
    StampEnvelope(request.events[i], request.raw[i]);
  }
}

}  // namespace ecrm
