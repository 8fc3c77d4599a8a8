// `ecrm check`: the operator's fsck of the identity graph. Opens a stopped ecrm's data dir
// read-only, runs CheckIdentityGraph (profiler/graph_check.h), prints each violation on its own
// line and a summary (docs/identity.md#checking-the-graph-ecrm-check). Runs on the calling thread.
#pragma once

#include <ostream>

namespace ecrm {

// argv[0] is "check". Returns the process exit code: 0 when the graph is consistent, 1 when
// violations were found, 2 on a usage error or when the data dir cannot be opened or read.
int RunCheck(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace ecrm
