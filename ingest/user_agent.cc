#include "ingest/user_agent.h"

namespace ecrm {
namespace {

bool Has(std::string_view ua, std::string_view needle) {
  return ua.find(needle) != std::string_view::npos;
}

}  // namespace

void ClassifyUserAgent(std::string_view ua, DeviceInfo& device) {
  if (ua.empty()) return;
  if (device.browser.empty()) {
    if (Has(ua, "bot") || Has(ua, "Bot") || Has(ua, "spider") || Has(ua, "crawl")) {
      device.browser = "bot";
    } else if (Has(ua, "Edg/")) {
      device.browser = "edge";
    } else if (Has(ua, "OPR/") || Has(ua, "Opera")) {
      device.browser = "opera";
    } else if (Has(ua, "Firefox/")) {
      device.browser = "firefox";
    } else if (Has(ua, "Chrome/") || Has(ua, "CriOS/")) {
      device.browser = "chrome";
    } else if (Has(ua, "Safari/")) {
      device.browser = "safari";
    } else {
      device.browser = "other";
    }
  }
  if (device.os.empty()) {
    if (Has(ua, "Android")) {
      device.os = "android";
    } else if (Has(ua, "iPhone") || Has(ua, "iPad") || Has(ua, "iPod")) {
      device.os = "ios";
    } else if (Has(ua, "Windows")) {
      device.os = "windows";
    } else if (Has(ua, "Mac OS X") || Has(ua, "Macintosh")) {
      device.os = "macos";
    } else if (Has(ua, "Linux")) {
      device.os = "linux";
    }
  }
  if (device.type.empty()) {
    if (device.browser == "bot") {
      device.type = "bot";
    } else if (Has(ua, "iPad") || Has(ua, "Tablet") || (Has(ua, "Android") && !Has(ua, "Mobile"))) {
      device.type = "tablet";
    } else if (Has(ua, "Mobi") || Has(ua, "iPhone")) {
      device.type = "mobile";
    } else {
      device.type = "desktop";
    }
  }
}

}  // namespace ecrm
