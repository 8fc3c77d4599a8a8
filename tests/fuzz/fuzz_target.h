// The libFuzzer entry point every target in tests/fuzz/ defines, and the check its invariants use.
// A target is linked either with libFuzzer (bench/fuzz/run.sh: clang, -fsanitize=fuzzer) or with
// replay_main.cc (the normal GCC builds: its seed corpus and seeded mutations, run by ctest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// Aborts (a crash to libFuzzer and to the replay driver) when an invariant does not hold.
#define FUZZ_CHECK(cond, ...)                                                            \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                 \
      std::fprintf(stderr, "\n");                                                        \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
