// Generated credentials for a zero-config start: when no write key or admin token is configured,
// ecrm creates random ones on first start, stores them in <data-dir>/credentials.yaml (mode 0600)
// and reuses them on later starts. The file holds a browser write key (for web pages and apps), a
// server write key (for the shop's servers), the admin token and a read key. A file from before
// key kinds, with a `write_key:`, keeps working: that key is a server key. Start-up only; not
// thread-safe.
#pragma once

#include <string>

#include "app/config.h"
#include "common/status.h"

namespace ecrm {

// Fills config.write_keys / browser_write_keys (only if neither is configured), admin_token and
// read_keys (if empty) from the credentials file, generating it if needed. `generated` tells
// whether new secrets were created (so the caller prints them once).
Status EnsureCredentials(Config& config, bool& generated);

}  // namespace ecrm
