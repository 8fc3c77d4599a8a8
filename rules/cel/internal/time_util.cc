#include "rules/cel/internal/time_util.h"

#include <sys/stat.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "absl/time/time.h"

namespace ecrm::cel::internal {
namespace {

__extension__ typedef __int128 int128;

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Civil {
  int64_t year;
  unsigned month, day;
};
Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Reads exactly n digits at *pos.
bool Digits(std::string_view s, size_t* pos, int n, int* out) {
  if (*pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}
bool Expect(std::string_view s, size_t* pos, char c) {
  if (*pos >= s.size() || s[*pos] != c) return false;
  ++*pos;
  return true;
}

// "+HH:MM", "-HH:MM" or "HH:MM" as seconds east of UTC.
bool ParseOffset(std::string_view s, int64_t* out) {
  size_t pos = 0;
  int sign = 1;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    sign = s[0] == '-' ? -1 : 1;
    pos = 1;
  }
  int hh, mm;
  if (!Digits(s, &pos, 2, &hh) || !Expect(s, &pos, ':') || !Digits(s, &pos, 2, &mm) ||
      pos != s.size() || hh > 23 || mm > 59) {
    return false;
  }
  *out = sign * (hh * 3600 + mm * 60);
  return true;
}

}  // namespace

Value MakeTimestamp(int64_t seconds, int64_t nanos) {
  int128 total = static_cast<int128>(seconds) * 1000000000 + nanos;
  int128 sec = total / 1000000000;
  int128 ns = total % 1000000000;
  if (ns < 0) {
    ns += 1000000000;
    --sec;
  }
  if (sec < kMinTimestampSeconds || sec > kMaxTimestampSeconds) {
    return Value::StaticError("timestamp out of range");
  }
  return Value::TimestampParts(static_cast<int64_t>(sec), static_cast<int32_t>(ns));
}

Value MakeDuration(int64_t seconds, int64_t nanos) {
  int128 total = static_cast<int128>(seconds) * 1000000000 + nanos;
  if (total < std::numeric_limits<int64_t>::min() || total > std::numeric_limits<int64_t>::max()) {
    return Value::StaticError("duration out of range");
  }
  int128 sec = total / 1000000000;
  int128 ns = total % 1000000000;
  return Value::DurationParts(static_cast<int64_t>(sec), static_cast<int32_t>(ns));
}

Value ParseTimestamp(std::string_view s) {
  size_t pos = 0;
  int y, mo, d, h, mi, se;
  if (!Digits(s, &pos, 4, &y) || !Expect(s, &pos, '-') || !Digits(s, &pos, 2, &mo) ||
      !Expect(s, &pos, '-') || !Digits(s, &pos, 2, &d) ||
      !(Expect(s, &pos, 'T') || Expect(s, &pos, 't')) || !Digits(s, &pos, 2, &h) ||
      !Expect(s, &pos, ':') || !Digits(s, &pos, 2, &mi) || !Expect(s, &pos, ':') ||
      !Digits(s, &pos, 2, &se)) {
    return Value::StaticError("invalid timestamp");
  }
  int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n < 9) nanos = nanos * 10 + (s[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return Value::StaticError("invalid timestamp");
    for (; n < 9; ++n) nanos *= 10;
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
    if (pos != s.size()) return Value::StaticError("invalid timestamp");
  } else if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-') ||
             !ParseOffset(s.substr(pos), &offset)) {
    return Value::StaticError("invalid timestamp");
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 1) {
    return Value::StaticError("timestamp out of range");
  }
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return MakeTimestamp(days * 86400 + h * 3600 + mi * 60 + se - offset, nanos);
}

Value ParseDuration(std::string_view s) {
  size_t pos = 0;
  bool neg = false;
  if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) {
    neg = s[pos] == '-';
    ++pos;
  }
  if (s.substr(pos) == "0") return Value::DurationParts(0, 0);
  if (pos == s.size()) return Value::StaticError("invalid duration");
  int128 total = 0;
  const int128 kLimit = static_cast<int128>(std::numeric_limits<int64_t>::max()) + 1;
  while (pos < s.size()) {
    int128 whole = 0, frac = 0, scale = 1;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      whole = whole * 10 + (s[pos++] - '0');
      if (whole > kLimit) return Value::StaticError("duration out of range");
    }
    bool had_whole = pos > start;
    bool had_frac = false;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (scale < static_cast<int128>(1000000000000000000)) {
          frac = frac * 10 + (s[pos] - '0');
          scale *= 10;
        }
        ++pos;
        had_frac = true;
      }
    }
    if (!had_whole && !had_frac) return Value::StaticError("invalid duration");
    std::string_view rest = s.substr(pos);
    int64_t unit;
    size_t len;
    if (rest.starts_with("ns")) {
      unit = 1, len = 2;
    } else if (rest.starts_with("us")) {
      unit = 1000, len = 2;
    } else if (rest.starts_with("\xc2\xb5s") || rest.starts_with("\xce\xbcs")) {
      unit = 1000, len = 3;
    } else if (rest.starts_with("ms")) {
      unit = 1000000, len = 2;
    } else if (rest.starts_with("s")) {
      unit = 1000000000, len = 1;
    } else if (rest.starts_with("m")) {
      unit = 60LL * 1000000000, len = 1;
    } else if (rest.starts_with("h")) {
      unit = 3600LL * 1000000000, len = 1;
    } else {
      return Value::StaticError("invalid duration: missing unit");
    }
    pos += len;
    total += whole * unit + frac * unit / scale;
    if (total > kLimit) return Value::StaticError("duration out of range");
  }
  if (neg) total = -total;
  int128 sec = total / 1000000000;
  return MakeDuration(static_cast<int64_t>(sec), static_cast<int64_t>(total % 1000000000));
}

std::string FormatTimestamp(int64_t seconds, int32_t nanos) {
  int64_t days = FloorDiv(seconds, 86400);
  int64_t sod = seconds - days * 86400;
  Civil c = CivilFromDays(days);
  char buf[64];
  int n = std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                        static_cast<long long>(c.year), c.month, c.day,
                        static_cast<long long>(sod / 3600), static_cast<long long>(sod / 60 % 60),
                        static_cast<long long>(sod % 60));
  std::string out(buf, static_cast<size_t>(n));
  if (nanos != 0) {
    std::snprintf(buf, sizeof(buf), ".%09d", nanos);
    std::string frac(buf);
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  out += 'Z';
  return out;
}

std::string FormatDuration(int64_t seconds, int32_t nanos) {
  std::string out;
  if (seconds < 0 || nanos < 0) out = "-";
  out += std::to_string(seconds < 0 ? -seconds : seconds);
  if (nanos != 0) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), ".%09d", nanos < 0 ? -nanos : nanos);
    std::string frac(buf);
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  out += 's';
  return out;
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  return std::string(buf, res.ptr);
}

// Whether `tz` names a zone file of the system's time zone database. absl (cctz) keeps every
// name it is asked to load, unknown ones too, for the life of the process: a name taken from an
// event must not reach it unless it is one of the database's finitely many zones.
static bool KnownZoneName(std::string_view tz) {
  if (tz.size() > 64 || tz.front() == '/' || tz.find("..") != std::string_view::npos) return false;
  for (const char c : tz) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' &&
        c != '+') {
      return false;
    }
  }
  const char* dir = std::getenv("TZDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/usr/share/zoneinfo") + "/" + std::string(tz);
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Value TimestampField(const Value& ts, TimeField field, std::string_view tz) {
  int64_t offset = 0;
  if (!tz.empty() && tz != "UTC" && !ParseOffset(tz, &offset)) {
    absl::TimeZone zone;
    if (!KnownZoneName(tz) || !absl::LoadTimeZone(std::string(tz), &zone)) {
      return Value::StaticError("unknown time zone");
    }
    offset = zone.At(absl::FromUnixSeconds(ts.seconds())).offset;
  }
  int64_t local = ts.seconds() + offset;
  int64_t days = FloorDiv(local, 86400);
  int64_t sod = local - days * 86400;
  Civil c = CivilFromDays(days);
  switch (field) {
    case TimeField::kFullYear:
      return Value::Int(c.year);
    case TimeField::kMonth:
      return Value::Int(c.month - 1);
    case TimeField::kDate:
      return Value::Int(c.day);
    case TimeField::kDayOfMonth:
      return Value::Int(c.day - 1);
    case TimeField::kDayOfWeek:
      return Value::Int(((days + 4) % 7 + 7) % 7);
    case TimeField::kDayOfYear:
      return Value::Int(days - DaysFromCivil(c.year, 1, 1));
    case TimeField::kHours:
      return Value::Int(sod / 3600);
    case TimeField::kMinutes:
      return Value::Int(sod / 60 % 60);
    case TimeField::kSeconds:
      return Value::Int(sod % 60);
    case TimeField::kMilliseconds:
      return Value::Int(ts.nanos() / 1000000);
  }
  return Value::StaticError("bad field");
}

Value DurationField(const Value& d, TimeField field) {
  switch (field) {
    case TimeField::kHours:
      return Value::Int(d.seconds() / 3600);
    case TimeField::kMinutes:
      return Value::Int(d.seconds() / 60);
    case TimeField::kSeconds:
      return Value::Int(d.seconds());
    case TimeField::kMilliseconds:
      return Value::Int(d.nanos() / 1000000);
    default:
      return Value::StaticError("no such overload");
  }
}

}  // namespace ecrm::cel::internal
