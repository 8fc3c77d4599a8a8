// ecrm: the command-line entry point. `ecrm serve [flags]` runs the service until SIGINT/SIGTERM;
// `ecrm check [flags]` checks a stopped service's identity graph.
#include <malloc.h>
#include <signal.h>

#include <cstring>
#include <iostream>

#include "app/check.h"
#include "app/config.h"
#include "app/credentials.h"
#include "app/service.h"
#include "common/logging.h"

namespace {

void Usage() {
  std::cout << "ecrm — real-time clickstream profiling\n\n"
               "usage: ecrm serve [flags]    run the service (ecrm serve --help for flags)\n"
               "       ecrm check [flags]    check a stopped service's identity graph\n"
               "                             (ecrm check --help for flags)\n"
               "       ecrm version          print the version\n";
}

// Release builds link jemalloc (app/CMakeLists.txt). Without it (sanitizer builds), glibc malloc
// would mmap the event path's batches of a few MB, or trim them back to the kernel after each
// batch and page-fault them in again (6-8 % of CPU in the Kafka drain); keep them in the heap.
void TuneMalloc() {
#ifndef ECRM_WITH_JEMALLOC
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest value glibc accepts
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

int Serve(int argc, const char* const* argv) {
  TuneMalloc();
  auto parsed = ecrm::ParseServeConfig(argc, argv);
  if (!parsed.ok()) {
    if (absl::IsCancelled(parsed.status())) return 0;
    std::cerr << "ecrm: invalid configuration: " << parsed.status().message() << "\n";
    return 2;
  }
  ecrm::Config config = *std::move(parsed);
  if (!ecrm::InitLogging(config.log_level, config.log_format)) {
    std::cerr << "ecrm: invalid configuration: log_level: unknown level '" << config.log_level
              << "'\n";
    return 2;
  }
  bool generated = false;
  if (auto s = ecrm::EnsureCredentials(config, generated); !s.ok()) {
    std::cerr << "ecrm: " << s.message() << "\n";
    return 2;
  }
  if (generated) {
    std::cout << "Generated credentials (stored in " << config.data_dir << "/credentials.yaml):\n";
    if (!config.browser_write_keys.empty()) {
      std::cout << "  browser write key: " << config.browser_write_keys.front()
                << "   (web pages and apps)\n";
    }
    if (!config.write_keys.empty()) {
      std::cout << "  server write key:  " << config.write_keys.front()
                << "   (the shop's servers only)\n";
    }
    std::cout << "  admin token:       " << config.admin_token << "\n"
              << "  read key:          " << config.read_keys.front() << "\n"
              << std::flush;
  }

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ecrm::Service service(config);
  int received = 0;
  service.SetAbortStart([&] {
    const timespec now{0, 0};
    const int sig = sigtimedwait(&signals, nullptr, &now);
    if (sig > 0) received = sig;
    return sig > 0;
  });
  if (auto s = service.Start(); !s.ok()) {
    if (absl::IsCancelled(s) && received != 0) {
      spdlog::info("signal {} while starting: stopped", received);
      return 0;
    }
    spdlog::critical("start failed: {}", s.ToString());
    return 1;
  }
  std::cout << "ecrm listening on http://" << config.http_host << ":" << service.port() << "\n"
            << std::flush;
  sigwait(&signals, &received);
  spdlog::info("signal {}: stopping", received);
  service.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    Usage();
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "version") == 0) {
    std::cout << "ecrm 0.1.0\n";
    return 0;
  }
  if (std::strcmp(argv[1], "serve") == 0) return Serve(argc - 1, argv + 1);
  if (std::strcmp(argv[1], "check") == 0)
    return ecrm::RunCheck(argc - 1, argv + 1, std::cout, std::cerr);
  std::cerr << "ecrm: unknown command '" << argv[1] << "'\n";
  Usage();
  return 2;
}
