// The driver that links with a fuzz target in the normal (GCC) builds, so that `make test` runs
// every target without clang: each file of the seed corpus, then `--mutations` inputs made from
// them by a deterministic (seeded) mutator: byte flips, inserts of interesting bytes and of the
// target's dictionary tokens, erased / duplicated / truncated spans, and splices from other seeds.
//
//   <target>_fuzz [--mutations=N] [--seed=S] [--max-seconds=T] [--dict=FILE] CORPUS_DIR_OR_FILE...
//
// On a crash (a sanitizer report, an abort of a FUZZ_CHECK, a signal) the input at fault is
// written to ./fuzz-crash-<pid> first, to be replayed by running the binary on that file alone.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));

namespace {

// The input being run, for the crash handlers (which only call async-signal-safe functions).
const std::string* g_current = nullptr;

void DumpCurrent() {
  if (g_current == nullptr) return;
  char name[64];
  std::snprintf(name, sizeof(name), "fuzz-crash-%d", static_cast<int>(::getpid()));
  const int fd = ::open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    const ssize_t n = ::write(fd, g_current->data(), g_current->size());
    (void)n;
    ::close(fd);
  }
  const char msg[] = "\nreplay: the input at fault is in ./fuzz-crash-<pid>\n";
  const ssize_t n = ::write(2, msg, sizeof(msg) - 1);
  (void)n;
  g_current = nullptr;
}

void OnSignal(int sig) {
  DumpCurrent();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// libFuzzer's dictionary format: one "token" per line (optionally name="token"), \xNN and \\ \"
// escapes, # comments.
std::vector<std::string> LoadDict(const std::string& path) {
  std::vector<std::string> tokens;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t open = line.find('"');
    const size_t close = line.rfind('"');
    if (line.empty() || line[0] == '#' || open == std::string::npos || close <= open) continue;
    std::string token;
    for (size_t i = open + 1; i < close; i++) {
      if (line[i] == '\\' && i + 1 < close) {
        if (line[i + 1] == 'x' && i + 3 < close) {
          token.push_back(static_cast<char>(std::stoi(line.substr(i + 2, 2), nullptr, 16)));
          i += 3;
        } else {
          token.push_back(line[++i]);
        }
      } else {
        token.push_back(line[i]);
      }
    }
    if (!token.empty()) tokens.push_back(std::move(token));
  }
  return tokens;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class Mutator {
 public:
  Mutator(const std::vector<std::string>& seeds, const std::vector<std::string>& dict,
          uint64_t seed)
      : seeds_(seeds), dict_(dict), rng_(seed) {}

  std::string Next() {
    std::string s = seeds_.empty() ? std::string() : seeds_[Pick(seeds_.size())];
    const int rounds = 1 + static_cast<int>(Pick(5));
    for (int r = 0; r < rounds; r++) Mutate(s);
    return s;
  }

 private:
  size_t Pick(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  void Mutate(std::string& s) {
    static constexpr char kChars[] =
        "{}[]\":,\\ \r\n\t0-9eE.+tfnul'()<>=&|!?%*/_\x00\x01\x7f\x80\xc3\xa9\xff";
    static constexpr std::string_view kInteresting(kChars, sizeof(kChars) - 1);
    switch (Pick(9)) {
      case 0:  // flip bits of a byte
        if (!s.empty()) s[Pick(s.size())] ^= static_cast<char>(1u << Pick(8));
        break;
      case 1:  // any byte
        if (!s.empty()) s[Pick(s.size())] = static_cast<char>(rng_());
        break;
      case 2:
        s.insert(Pick(s.size() + 1), 1, kInteresting[Pick(kInteresting.size())]);
        break;
      case 3:
        if (!s.empty()) s.erase(Pick(s.size()), 1 + Pick(8));
        break;
      case 4:  // a dictionary token, or a byte if there is no dictionary
        if (!dict_.empty()) {
          s.insert(Pick(s.size() + 1), dict_[Pick(dict_.size())]);
        } else {
          s.insert(Pick(s.size() + 1), 1, static_cast<char>(rng_()));
        }
        break;
      case 5: {  // duplicate a span (deepens nesting, repeats fields)
        const size_t at = Pick(s.size() + 1);
        const size_t len = Pick(std::min<size_t>(s.size() - at, 64) + 1);
        s.insert(at, s.substr(at, len));
        break;
      }
      case 6: {  // splice a span of another seed
        if (seeds_.empty()) break;
        const std::string& o = seeds_[Pick(seeds_.size())];
        const size_t at = Pick(o.size() + 1);
        s.insert(Pick(s.size() + 1), o.substr(at, 1 + Pick(32)));
        break;
      }
      case 7:  // truncate
        s.resize(Pick(s.size() + 1));
        break;
      default: {  // a boundary number where a digit was
        static const char* kNumbers[] = {
            "0",   "-1",  "1e308", "-9223372036854775808", "18446744073709551616", "1.5",
            "NaN", "255", "65536"};
        const size_t at = s.find_first_of("0123456789", Pick(s.size() + 1));
        if (at != std::string::npos) s.replace(at, 1, kNumbers[Pick(std::size(kNumbers))]);
        break;
      }
    }
  }

  const std::vector<std::string>& seeds_;
  const std::vector<std::string>& dict_;
  std::mt19937_64 rng_;
};

void Run(const std::string& input) {
  g_current = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_current = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  long mutations = 0;
  uint64_t seed = 1;
  double max_seconds = 0;
  std::vector<std::string> dict;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; i++) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--mutations=")) {
      mutations = std::stol(std::string(arg.substr(12)));
    } else if (arg.starts_with("--seed=")) {
      seed = std::stoull(std::string(arg.substr(7)));
    } else if (arg.starts_with("--max-seconds=")) {
      max_seconds = std::stod(std::string(arg.substr(14)));
    } else if (arg.starts_with("--dict=")) {
      dict = LoadDict(std::string(arg.substr(7)));
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else if (std::filesystem::is_regular_file(arg)) {
      files.push_back(arg);
    } else {
      std::fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
      return 2;
    }
  }
  std::sort(files.begin(), files.end());  // directory order is not deterministic
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(DumpCurrent);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, OnSignal);

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> seeds;
  for (const auto& f : files) {
    seeds.push_back(ReadFile(f));
    Run(seeds.back());
  }
  Mutator mutator(seeds, dict, seed);
  long ran = 0;
  for (; ran < mutations; ran++) {
    if (max_seconds > 0 && (ran & 63) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
            max_seconds) {
      break;
    }
    Run(mutator.Next());
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "replay: %zu corpus files, %ld mutations (seed %llu, %zu dictionary tokens) in %.2f s\n",
      seeds.size(), ran, static_cast<unsigned long long>(seed), dict.size(), secs);
  return 0;
}
