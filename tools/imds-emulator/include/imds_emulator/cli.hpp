#pragma once
// Command-line parsing for imds-emulator (pure: no I/O), plus small start-up helpers.

#include "imds_emulator/emulator.hpp"

#include <tb/log.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imds_emulator {

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 8079;
  bool allow_remote = false;
  std::string port_file;
  std::string public_key_out;
  /// The Entra-like token endpoint over TLS (--entra-listen); needs tls_cert, tls_key,
  /// sa_issuer_key and at least one --federated-client.
  bool entra_enabled = false;
  std::string entra_host = "127.0.0.1";
  unsigned short entra_port = 0;
  std::string entra_port_file;
  std::string tls_cert;       ///< PEM certificate chain (server certificate first)
  std::string tls_key;        ///< PEM private key
  std::string sa_issuer_key;  ///< PEM public key that signs client assertions
  Config config;  ///< identities filled with the default one when no --identity is given
  tb::log::Format log_format = tb::log::Format::json;
  spdlog::level::level_enum log_level = spdlog::level::info;
};

struct CommandLine {
  std::optional<Options> options;  ///< set when the flags are valid
  bool help = false;
  std::string error;  ///< one line naming the flag and the reason
};

/// Parses argv[1..] ("--flag value" or "--flag=value").
CommandLine parse_command_line(const std::vector<std::string_view>& args);
/// The --help text.
std::string usage();
/// Parses "client_id=ID[,object_id=OID][,mi_res_id=RESID]"; a missing object_id is derived
/// from the client_id, a missing mi_res_id names the client_id under the dev resource group.
std::optional<Identity> parse_identity(std::string_view text, std::string& error);
/// Parses "client_id=ID,sub=SUBJECT[,object_id=OID][,mi_res_id=RESID]".
std::optional<FederatedClient> parse_federated_client(std::string_view text, std::string& error);

}  // namespace imds_emulator
