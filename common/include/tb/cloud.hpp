#pragma once
// The Azure clouds the broker and the app know, and what differs between them: the Entra
// authority and the token audiences (resources) of the databases. Names as `az cloud list`
// and the Azure SDKs' AZURE_ENVIRONMENT spell them.

#include <optional>
#include <string>
#include <string_view>

namespace tb {

enum class Cloud { public_cloud, us_government, china };

struct CloudEndpoints {
  std::string_view name;            ///< "AzurePublicCloud", "AzureUSGovernment", "AzureChinaCloud"
  std::string_view authority_host;  ///< Entra, with a trailing slash
  std::string_view sql_resource;    ///< Azure SQL's token audience, with a trailing slash
  std::string_view ossrdbms_resource;  ///< Azure Database for PostgreSQL / MySQL's
};

/// "AzurePublicCloud", "AzureUSGovernment" or "AzureChinaCloud" (case-insensitive); nullopt else.
std::optional<Cloud> parse_cloud(std::string_view name);
const CloudEndpoints& endpoints(Cloud cloud);
/// "AzurePublicCloud, AzureUSGovernment, AzureChinaCloud", for error messages and help.
std::string cloud_names();
/// A --cloud flag's value: sets `out`, or returns what is wrong with `name`.
std::optional<std::string> parse_cloud_flag(std::string_view name, Cloud& out);

}  // namespace tb
