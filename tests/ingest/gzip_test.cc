#include "ingest/gzip.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace ecrm {
namespace {

std::string Gzip(const std::string& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

TEST(Gzip, RoundTrips) {
  const std::string body = R"({"batch":[)" + std::string(10000, ' ') + "]}";
  std::string out;
  EXPECT_EQ(InflateBody(Gzip(body), 1 << 20, &out), InflateResult::kOk);
  EXPECT_EQ(out, body);
}

TEST(Gzip, StopsAtTheLimit) {
  std::string out;
  EXPECT_EQ(InflateBody(Gzip(std::string(1 << 20, 'a')), 1000, &out), InflateResult::kTooLarge);
  EXPECT_LE(out.size(), 1000u);
}

TEST(Gzip, RejectsCorruptAndTruncatedStreams) {
  std::string out;
  EXPECT_EQ(InflateBody("not gzip at all", 1000, &out), InflateResult::kCorrupt);
  const std::string good = Gzip("hello world hello world");
  EXPECT_EQ(InflateBody(good.substr(0, good.size() - 6), 1000, &out), InflateResult::kCorrupt);
}

// Two gzip members concatenated (as `cat a.gz b.gz` or a streaming compressor makes them) decode to
// both contents, and the limit counts the output of all members together.
TEST(Gzip, DecodesEveryMemberOfAMultiMemberBody) {
  const std::string first = R"({"batch":[{"type":"track")";
  const std::string second = R"(,"event":"E","anonymousId":"A"}]})";
  std::string out;
  ASSERT_EQ(InflateBody(Gzip(first) + Gzip(second), 1000, &out), InflateResult::kOk);
  EXPECT_EQ(out, first + second);
  ASSERT_EQ(InflateBody(Gzip("a") + Gzip("b") + Gzip("c"), 1000, &out), InflateResult::kOk);
  EXPECT_EQ(out, "abc");
  const std::string half(600, 'x');
  EXPECT_EQ(InflateBody(Gzip(half) + Gzip(half), 1000, &out), InflateResult::kTooLarge);
  EXPECT_LE(out.size(), 1000u);
  // What follows the last member must be a member too.
  EXPECT_EQ(InflateBody(Gzip(first) + "trailing junk", 1000, &out), InflateResult::kCorrupt);
  const std::string good = Gzip(second);
  EXPECT_EQ(InflateBody(Gzip(first) + good.substr(0, good.size() - 6), 1000, &out),
            InflateResult::kCorrupt);
}

}  // namespace
}  // namespace ecrm
