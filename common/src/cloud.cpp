#include "tb/cloud.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace tb {
namespace {

constexpr std::array<CloudEndpoints, 3> kClouds{{
    {"AzurePublicCloud", "https://login.microsoftonline.com/", "https://database.windows.net/",
     "https://ossrdbms-aad.database.windows.net"},
    {"AzureUSGovernment", "https://login.microsoftonline.us/",
     "https://database.usgovcloudapi.net/", "https://ossrdbms-aad.database.usgovcloudapi.net"},
    {"AzureChinaCloud", "https://login.chinacloudapi.cn/", "https://database.chinacloudapi.cn/",
     "https://ossrdbms-aad.database.chinacloudapi.cn"},
}};

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

}  // namespace

std::optional<Cloud> parse_cloud(std::string_view name) {
  for (std::size_t i = 0; i < kClouds.size(); ++i) {
    if (iequals(name, kClouds[i].name)) return static_cast<Cloud>(i);
  }
  return std::nullopt;
}

const CloudEndpoints& endpoints(Cloud cloud) { return kClouds.at(static_cast<std::size_t>(cloud)); }

std::string cloud_names() {
  std::string out;
  for (const auto& cloud : kClouds) out += (out.empty() ? "" : ", ") + std::string(cloud.name);
  return out;
}

std::optional<std::string> parse_cloud_flag(std::string_view name, Cloud& out) {
  const auto cloud = parse_cloud(name);
  if (!cloud) return "must be one of " + cloud_names() + ", got '" + std::string(name) + "'";
  out = *cloud;
  return std::nullopt;
}

}  // namespace tb
