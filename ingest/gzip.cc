#include "ingest/gzip.h"

#include <zlib.h>

namespace ecrm {

InflateResult InflateBody(std::string_view compressed, size_t max_output, std::string* out) {
  out->clear();
  z_stream zs{};
  // 15 + 32: a zlib or gzip header, detected automatically.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return InflateResult::kCorrupt;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());
  char buf[16384];
  int rc = Z_OK;
  InflateResult result = InflateResult::kOk;
  while (true) {
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      // Another member follows (gzip allows several, concatenated: RFC 1952 §2.2): decode it too.
      if (inflateReset(&zs) != Z_OK) {
        result = InflateResult::kCorrupt;
        break;
      }
    }
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      result = InflateResult::kCorrupt;
      break;
    }
    const size_t produced = sizeof(buf) - zs.avail_out;
    if (out->size() + produced > max_output) {
      result = InflateResult::kTooLarge;
      break;
    }
    out->append(buf, produced);
    if (rc == Z_OK && zs.avail_in == 0 && produced == 0) {  // truncated stream
      result = InflateResult::kCorrupt;
      break;
    }
  }
  inflateEnd(&zs);
  return result;
}

}  // namespace ecrm
