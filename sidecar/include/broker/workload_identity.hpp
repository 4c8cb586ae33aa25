#pragma once
// The workload-identity source: exchanges the projected service-account token
// (AZURE_FEDERATED_TOKEN_FILE) for an access token at Entra's v2.0 token endpoint over TLS.

#include "broker/source.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace broker {

/// The client id to use for `key`, or a 400 FetchError for identities that workload identity
/// cannot express (object_id, mi_res_id) or when neither the request nor AZURE_CLIENT_ID names
/// one.
std::variant<std::string, FetchError> workload_identity_client_id(const TokenKey& key,
                                                                  const std::string& fallback);

/// The resource as a v2.0 scope: "https://database.windows.net/" ->
/// "https://database.windows.net/.default".
std::string scope_for(const std::string& resource);

/// The application/x-www-form-urlencoded body of the client-credentials exchange.
std::string workload_identity_form(const std::string& client_id, const std::string& resource,
                                   const std::string& assertion);

/// Turns a non-200 Entra answer into a FetchError: keeps `error`, the AADSTS description (first
/// line) and adds a hint for the codes a misconfigured pod meets (700024 expired assertion,
/// 70021 no matching federated credential, 700016 unknown application, 90002 unknown tenant).
FetchError entra_error(unsigned status, std::string_view body, std::string_view retry_after,
                       SystemTime now);

/// Reads the federated token file; nullopt with `error` set when it is missing, unreadable or
/// empty. Surrounding whitespace is trimmed.
std::optional<std::string> read_federated_token(const std::string& path, std::string& error);

class WorkloadIdentitySource final : public Source {
 public:
  /// Throws std::invalid_argument (bad authority host) or std::runtime_error (CA file) with a
  /// message that names the setting.
  WorkloadIdentitySource(WorkloadIdentitySettings settings, const Clock& clock);

  boost::asio::awaitable<FetchResult> fetch(const TokenKey& key,
                                            std::chrono::milliseconds timeout) override;
  std::string_view name() const override { return "workload-identity"; }
  std::string describe() const override { return token_url_; }

 private:
  /// The TLS context for this exchange: with AZURE_KUBERNETES_CA_FILE, rebuilt when the file's
  /// content changed (a CA rotation; an empty file mid-rotation keeps the last one); nullptr
  /// with `problem` set when it cannot be read.
  std::shared_ptr<boost::asio::ssl::context> tls_for_call(std::string& problem);

  WorkloadIdentitySettings settings_;
  std::string token_url_;
  std::string host_;
  std::string port_;
  std::string target_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::string tls_ca_pem_;   ///< the proxy CA file's content tls_ was made from
  std::string server_name_;  ///< what the certificate must name: sni_name, else the host
  const Clock& clock_;
};

}  // namespace broker
