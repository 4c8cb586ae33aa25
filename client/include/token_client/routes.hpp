#pragma once
// The broker's API routes and the headers they read: the one definition that the broker's API
// layer (sidecar/api.hpp), this client, tokenctl and token-bench share. Header-only, no
// dependencies (CMake target token_client_routes), so the broker can take it without the client.

#include <string_view>

namespace token_client::routes {

/// The broker's own route: GET /v1/token?resource=… (see DESIGN.md, Socket API).
inline constexpr std::string_view kToken = "/v1/token";
/// Forced refresh: POST /v1/token/refresh?resource=…[&token_sha256=<hex SHA-256 of the rejected
/// token>] fetches a new token from the upstream now (see DESIGN.md, Socket API).
inline constexpr std::string_view kRefresh = "/v1/token/refresh";
/// Watch: GET /v1/token/watch?resource=…[&include_token=true] is a Server-Sent Events stream:
/// the current token's metadata at once, then an event for each new token (see DESIGN.md).
inline constexpr std::string_view kWatch = "/v1/token/watch";
/// The IMDS-compatible route (answers in IMDS's shape; needs `Metadata: true`).
inline constexpr std::string_view kImds = "/metadata/identity/oauth2/token";
/// App Service's managed-identity route (api-version 2019-08-01), on the drop-in listener.
inline constexpr std::string_view kAppService = "/msi/token";
inline constexpr std::string_view kAppServiceApiVersion = "2019-08-01";
/// The header App Service callers send the identity-header secret in.
inline constexpr std::string_view kIdentityHeader = "X-IDENTITY-HEADER";
/// Liveness and readiness (on the socket and the admin listener).
inline constexpr std::string_view kHealth = "/healthz";
inline constexpr std::string_view kReady = "/readyz";

}  // namespace token_client::routes
