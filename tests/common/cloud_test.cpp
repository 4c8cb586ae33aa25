// Pins: the clouds' names and endpoints (as `az cloud show` lists them).
#include "tb/cloud.hpp"

#include <gtest/gtest.h>

namespace tb {
namespace {

TEST(Cloud, NamesParseCaseInsensitivelyAndUnknownOnesDoNot) {
  EXPECT_EQ(parse_cloud("AzurePublicCloud"), Cloud::public_cloud);
  EXPECT_EQ(parse_cloud("azureusgovernment"), Cloud::us_government);
  EXPECT_EQ(parse_cloud("AZURECHINACLOUD"), Cloud::china);
  for (const char* bad : {"", "public", "AzureGermanCloud", "AzurePublicCloud "}) {
    EXPECT_EQ(parse_cloud(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(cloud_names(), "AzurePublicCloud, AzureUSGovernment, AzureChinaCloud");
  Cloud cloud = Cloud::public_cloud;
  EXPECT_EQ(parse_cloud_flag("AzureChinaCloud", cloud), std::nullopt);
  EXPECT_EQ(cloud, Cloud::china);
  EXPECT_TRUE(parse_cloud_flag("mars", cloud).has_value());
  EXPECT_EQ(cloud, Cloud::china) << "a bad value leaves it as it was";
}

TEST(Cloud, EachCloudHasItsAuthorityAndDatabaseAudiences) {
  EXPECT_EQ(endpoints(Cloud::public_cloud).authority_host, "https://login.microsoftonline.com/");
  EXPECT_EQ(endpoints(Cloud::public_cloud).sql_resource, "https://database.windows.net/");
  EXPECT_EQ(endpoints(Cloud::public_cloud).ossrdbms_resource,
            "https://ossrdbms-aad.database.windows.net");
  EXPECT_EQ(endpoints(Cloud::us_government).authority_host, "https://login.microsoftonline.us/");
  EXPECT_EQ(endpoints(Cloud::us_government).sql_resource, "https://database.usgovcloudapi.net/");
  EXPECT_EQ(endpoints(Cloud::us_government).ossrdbms_resource,
            "https://ossrdbms-aad.database.usgovcloudapi.net");
  EXPECT_EQ(endpoints(Cloud::china).authority_host, "https://login.chinacloudapi.cn/");
  EXPECT_EQ(endpoints(Cloud::china).sql_resource, "https://database.chinacloudapi.cn/");
  EXPECT_EQ(endpoints(Cloud::china).ossrdbms_resource,
            "https://ossrdbms-aad.database.chinacloudapi.cn");
  for (auto cloud : {Cloud::public_cloud, Cloud::us_government, Cloud::china}) {
    EXPECT_EQ(parse_cloud(endpoints(cloud).name), cloud);
  }
}

}  // namespace
}  // namespace tb
