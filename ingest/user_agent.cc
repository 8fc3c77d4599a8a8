#include "ingest/user_agent.h"

#include <array>
#include <functional>
#include <initializer_list>
#include <string>

namespace ecrm {
namespace {

bool Has(std::string_view ua, std::string_view needle) {
  return ua.find(needle) != std::string_view::npos;
}

// What a user agent string says on its own: string literals, so a cached copy needs no allocation.
struct UaClass {
  const char* browser;
  const char* os;  // "" when the string names no known OS
  const char* type;
};

// Families in order of precedence: the first whose needles occur in the agent wins.
struct Family {
  const char* name;
  std::initializer_list<std::string_view> needles;
};

const char* FirstFamily(std::string_view ua, std::initializer_list<Family> families,
                        const char* none) {
  for (const auto& f : families) {
    for (std::string_view needle : f.needles) {
      if (Has(ua, needle)) return f.name;
    }
  }
  return none;
}

UaClass Classify(std::string_view ua) {
  UaClass c{};
  c.browser = FirstFamily(ua,
                          {{"bot", {"bot", "Bot", "spider", "crawl"}},
                           {"edge", {"Edg/"}},
                           {"opera", {"OPR/", "Opera"}},
                           {"firefox", {"Firefox/"}},
                           {"chrome", {"Chrome/", "CriOS/"}},
                           {"safari", {"Safari/"}}},
                          "other");
  c.os = FirstFamily(ua,
                     {{"android", {"Android"}},
                      {"ios", {"iPhone", "iPad", "iPod"}},
                      {"windows", {"Windows"}},
                      {"macos", {"Mac OS X", "Macintosh"}},
                      {"linux", {"Linux"}}},
                     "");
  if (std::string_view(c.browser) == "bot") {
    c.type = "bot";
  } else if (Has(ua, "iPad") || Has(ua, "Tablet") || (Has(ua, "Android") && !Has(ua, "Mobile"))) {
    c.type = "tablet";
  } else if (Has(ua, "Mobi") || Has(ua, "iPhone")) {
    c.type = "mobile";
  } else {
    c.type = "desktop";
  }
  return c;
}

// A small direct-mapped cache of classifications per thread: a shop's traffic repeats a few
// hundred user agents, and the dozen substring searches above cost more than a hash and one
// comparison (a tenth of the Kafka consumer's CPU before this cache).
class UaCache {
 public:
  static bool Cacheable(std::string_view ua) { return ua.size() <= kMaxCachedLength; }

  UaClass Get(std::string_view ua) {
    const size_t h = std::hash<std::string_view>{}(ua);
    Entry& e = entries_[h % entries_.size()];
    if (e.hash != h || e.ua != ua) {
      e.hash = h;
      e.ua.assign(ua);
      e.value = Classify(ua);
    }
    return e.value;
  }

 private:
  static constexpr size_t kMaxCachedLength = 512;
  struct Entry {
    size_t hash = 0;
    std::string ua;
    UaClass value{};
  };
  std::array<Entry, 256> entries_;
};

}  // namespace

void ClassifyUserAgent(std::string_view ua, DeviceInfo& device) {
  if (ua.empty()) return;
  thread_local UaCache cache;
  const UaClass c = UaCache::Cacheable(ua) ? cache.Get(ua) : Classify(ua);
  if (device.browser.empty()) device.browser = c.browser;
  if (device.os.empty()) device.os = c.os;
  if (device.type.empty()) device.type = c.type;
}

}  // namespace ecrm
