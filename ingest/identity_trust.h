// IdentityTrust: how much the identity claims of one collector request may be believed, from the
// kind of its write key. A server key's events are trusted. A browser key ships in every web page,
// so its events are not; such an event's userId claim is verified only when it carries
// `context.ecrm.user_hash` = lowercase hex(HMAC-SHA256(identity secret, userId)), which only the
// shop's server can compute (docs/identity.md#write-keys-and-identity-verification).
//
// Ownership: one per ApiService, built from the config; holds a copy of the identity secret, which
// it never logs and wipes on destruction. Threading: immutable after construction; Mark and
// VerifyUserHash may be called from every HTTP thread at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/collector_parser.h"

namespace ecrm {

enum class WriteKeyKind : uint8_t {
  kServer,   // on the shop's servers only: identity claims are trusted
  kBrowser,  // in web pages and apps, public: identity claims need a user_hash
};

// A configured write key as the collector needs it: its kind and its KeyId (never the key).
struct WriteKeyInfo {
  WriteKeyKind kind = WriteKeyKind::kServer;
  std::string id;  // KeyId(key)
};

// Lowercase hex of HMAC-SHA256(key, data): 64 characters.
std::string HmacSha256Hex(std::string_view key, std::string_view data);

class IdentityTrust {
 public:
  // `secret` empty: no identity secret configured, so no browser claim ever verifies.
  explicit IdentityTrust(std::string secret);
  ~IdentityTrust();
  IdentityTrust(const IdentityTrust&) = delete;
  IdentityTrust& operator=(const IdentityTrust&) = delete;

  bool has_secret() const { return !secret_.empty(); }

  // True if a secret is configured, `user_id` is not empty and `user_hash` equals
  // HmacSha256Hex(secret, user_id), compared in constant time.
  bool VerifyUserHash(std::string_view user_id, std::string_view user_hash) const;

  // Marks every event of `request`, sent with `key`: source = key.id; trusted for a server key;
  // for a browser key, user_hash_valid = VerifyUserHash(user_id, user_hash). Clears each event's
  // user_hash, and stamps the same marks on the raw Kafka envelopes if the request has them.
  void Mark(const WriteKeyInfo& key, CollectorRequest& request) const;

 private:
  std::string secret_;
};

}  // namespace ecrm
