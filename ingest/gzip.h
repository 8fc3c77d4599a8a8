// Gzip/deflate request-body decoding with a hard output limit (a "zip bomb" stops at the limit).
// Pure function over zlib, thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace ecrm {

enum class InflateResult { kOk, kCorrupt, kTooLarge };

// Decodes a gzip or zlib stream (auto-detected) into `out`, failing if it would exceed
// `max_output`. Concatenated streams (a multi-member gzip file) are decoded one after the other,
// under the one limit; anything after the last that is not a stream makes the body corrupt.
InflateResult InflateBody(std::string_view compressed, size_t max_output, std::string* out);

}  // namespace ecrm
