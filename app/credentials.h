// Generated credentials for a zero-config start: when no write key or admin token is configured,
// ecrm creates random ones on first start, stores them in <data-dir>/credentials.yaml (mode 0600)
// and reuses them on later starts. Start-up only; not thread-safe.
#pragma once

#include <string>

#include "app/config.h"
#include "common/status.h"

namespace ecrm {

// Fills config.write_keys / admin_token from the credentials file, generating it if needed.
// `generated` tells whether new secrets were created (so the caller prints them once).
Status EnsureCredentials(Config& config, bool& generated);

}  // namespace ecrm
