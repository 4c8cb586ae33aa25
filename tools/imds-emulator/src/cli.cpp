#include "imds_emulator/cli.hpp"

#include "tb/crypto.hpp"
#include "tb/flags.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace imds_emulator {
namespace {

/// A whole number in [min, max] (tb::flags::to_int, with the range on top).
bool parse_int(std::string_view text, long long min, long long max, long long& out) {
  const auto value = tb::flags::to_int(text);
  if (!value || *value < min || *value > max) return false;
  out = *value;
  return true;
}

// A stable, UUID-shaped object id derived from the client id, so runs are reproducible.
std::string derived_object_id(std::string_view client_id) {
  const std::string digits = tb::hex(tb::sha256(client_id), 16);
  // 8-4-4-4-12, as a UUID is written.
  return digits.substr(0, 8) + '-' + digits.substr(8, 4) + '-' + digits.substr(12, 4) + '-' +
         digits.substr(16, 4) + '-' + digits.substr(20);
}

// "HOST:PORT" or "[V6]:PORT"; HOST must be an IP literal or "localhost".
bool parse_listen(std::string_view text, std::string& out_host, unsigned short& out_port,
                  std::string& error) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    error = "expected HOST:PORT, got \"" + std::string(text) + "\"";
    return false;
  }
  std::string host(text.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  long long port = 0;
  if (ec) {
    error = "\"" + host + "\" is not an IP address (or localhost)";
  } else if (!parse_int(text.substr(colon + 1), 0, 65535, port)) {
    error = "port must be a number from 0 to 65535";
  } else {
    out_host = host;
    out_port = static_cast<unsigned short>(port);
    return true;
  }
  return false;
}

}  // namespace

std::optional<Identity> parse_identity(std::string_view text, std::string& error) {
  Identity identity;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto eq = part.find('=');
    const std::string_view key = part.substr(0, eq);
    const std::string value(eq == std::string_view::npos ? "" : part.substr(eq + 1));
    if (value.empty()) {
      error = "expected key=value, got \"" + std::string(part) + "\"";
      return std::nullopt;
    }
    if (key == "client_id") {
      identity.client_id = value;
    } else if (key == "object_id") {
      identity.object_id = value;
    } else if (key == "mi_res_id") {
      identity.mi_res_id = value;
    } else {
      error = "unknown key \"" + std::string(key) + "\" (use client_id, object_id, mi_res_id)";
      return std::nullopt;
    }
  }
  if (identity.client_id.empty()) {
    error = "client_id is required";
    return std::nullopt;
  }
  if (identity.object_id.empty()) identity.object_id = derived_object_id(identity.client_id);
  if (identity.mi_res_id.empty()) {
    identity.mi_res_id =
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/dev/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/" +
        identity.client_id;
  }
  return identity;
}

std::optional<FederatedClient> parse_federated_client(std::string_view text, std::string& error) {
  // Take sub=… out (a subject has no commas) and read the rest as an --identity.
  FederatedClient client;
  std::string rest;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (part.starts_with("sub=")) {
      client.subject = std::string(part.substr(4));
    } else {
      rest += (rest.empty() ? "" : ",") + std::string(part);
    }
  }
  if (client.subject.empty()) {
    error = "sub is required (e.g. sub=system:serviceaccount:NAMESPACE:NAME)";
    return std::nullopt;
  }
  auto identity = parse_identity(rest, error);
  if (!identity) return std::nullopt;
  client.identity = std::move(*identity);
  return client;
}

CommandLine parse_command_line(const std::vector<std::string_view>& args) {
  static constexpr std::array<std::string_view, 18> kValued{
      "--listen",     "--port-file",     "--identity",         "--lifetime",
      "--tenant",     "--issuer",        "--public-key-out",   "--log-format",
      "--log-level",  "--entra-listen",  "--entra-port-file",  "--tls-cert",
      "--tls-key",    "--sa-issuer-key", "--federated-client", "--identity-header",
      "--rate-limit", "--max-concurrent"};
  CommandLine result;
  Options options;
  auto fail = [&](std::string_view flag, const std::string& reason) {
    result.error = std::string(flag) + ": " + reason;
    return result;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    if (flag == "--help" || flag == "-h") {
      result.help = true;
      return result;
    }
    if (flag == "--allow-remote") {
      options.allow_remote = true;
      continue;
    }
    const auto eq = flag.find('=');
    const bool inline_value = flag.starts_with("--") && eq != std::string_view::npos;
    std::string_view value = inline_value ? flag.substr(eq + 1) : std::string_view();
    if (inline_value) flag = flag.substr(0, eq);
    if (std::find(kValued.begin(), kValued.end(), flag) == kValued.end()) {
      return fail(flag, "unknown flag (see --help)");
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return fail(flag, "needs a value");
      value = args[++i];
    }
    std::string error;
    long long number = 0;
    if (flag == "--listen") {
      if (!parse_listen(value, options.host, options.port, error)) return fail(flag, error);
    } else if (flag == "--entra-listen") {
      if (!parse_listen(value, options.entra_host, options.entra_port, error)) {
        return fail(flag, error);
      }
      options.entra_enabled = true;
    } else if (flag == "--entra-port-file" || flag == "--tls-cert" || flag == "--tls-key" ||
               flag == "--sa-issuer-key") {
      if (value.empty()) return fail(flag, "needs a file path");
      (flag == "--entra-port-file" ? options.entra_port_file
       : flag == "--tls-cert"      ? options.tls_cert
       : flag == "--tls-key"       ? options.tls_key
                                   : options.sa_issuer_key) = value;
    } else if (flag == "--identity-header") {
      if (value.empty()) return fail(flag, "must not be empty");
      options.config.identity_header = value;
    } else if (flag == "--federated-client") {
      auto client = parse_federated_client(value, error);
      if (!client) return fail(flag, error);
      for (const auto& known : options.config.federated_clients) {
        if (known.identity.client_id == client->identity.client_id) {
          return fail(flag, "client_id " + known.identity.client_id + " is given twice");
        }
      }
      options.config.federated_clients.push_back(std::move(*client));
    } else if (flag == "--port-file" || flag == "--public-key-out") {
      if (value.empty()) return fail(flag, "needs a file path");
      (flag == "--port-file" ? options.port_file : options.public_key_out) = value;
    } else if (flag == "--identity") {
      auto identity = parse_identity(value, error);
      if (!identity) return fail(flag, error);
      for (const auto& known : options.config.identities) {
        if (known.client_id == identity->client_id) {
          return fail(flag, "client_id " + known.client_id + " is given twice");
        }
      }
      options.config.identities.push_back(std::move(*identity));
    } else if (flag == "--lifetime") {
      if (!parse_int(value, 1, 366LL * 86400, number)) {
        return fail(flag, "must be a whole number of seconds from 1 to 31622400");
      }
      options.config.lifetime = std::chrono::seconds(number);
    } else if (flag == "--rate-limit") {
      if (!parse_int(value, 1, 1'000'000, number)) {
        return fail(flag, "must be a whole number of requests per second from 1 to 1000000");
      }
      options.config.rate_limit = static_cast<double>(number);
    } else if (flag == "--max-concurrent") {
      if (!parse_int(value, 1, 1'000'000, number)) {
        return fail(flag, "must be a whole number of requests from 1 to 1000000");
      }
      options.config.max_concurrent = static_cast<unsigned>(number);
    } else if (flag == "--tenant" || flag == "--issuer") {
      if (value.empty()) return fail(flag, "must not be empty");
      (flag == "--tenant" ? options.config.tenant : options.config.issuer) = value;
    } else if (flag == "--log-format") {
      if (!tb::log::parse_format(value, options.log_format))
        return fail(flag, "must be json or text");
    } else if (!tb::log::parse_level(value, options.log_level)) {
      return fail(flag, "must be trace, debug, info, warn, error, critical or off");
    }
  }
  if (!options.allow_remote && !boost::asio::ip::make_address(options.host).is_loopback()) {
    return fail("--listen", options.host +
                                " is not a loopback address; add --allow-remote to "
                                "listen on it");
  }
  if (!options.allow_remote && options.entra_enabled &&
      !boost::asio::ip::make_address(options.entra_host).is_loopback()) {
    return fail("--entra-listen", options.entra_host +
                                      " is not a loopback address; add --allow-remote to "
                                      "listen on it");
  }
  if (options.entra_enabled) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return fail("--entra-listen",
                  "needs --tls-cert and --tls-key (the endpoint speaks TLS only)");
    }
    if (options.sa_issuer_key.empty()) {
      return fail("--entra-listen",
                  "needs --sa-issuer-key (the public key that signs client assertions)");
    }
    if (options.config.federated_clients.empty()) {
      return fail("--entra-listen",
                  "needs at least one --federated-client client_id=ID,sub=SUBJECT");
    }
  } else if (!options.tls_cert.empty() || !options.tls_key.empty() ||
             !options.sa_issuer_key.empty() || !options.config.federated_clients.empty() ||
             !options.entra_port_file.empty()) {
    return fail("--entra-listen",
                "is required by --tls-cert, --tls-key, --sa-issuer-key, --federated-client and "
                "--entra-port-file");
  }
  if (options.config.identities.empty()) options.config.identities.push_back(default_identity());
  result.options = std::move(options);
  return result;
}

std::string usage() {
  return R"(imds-emulator: a local stand-in for Azure NMI/IMDS that issues real RS256 JWTs.

Usage: imds-emulator [flags]   (flags take "--flag VALUE" or "--flag=VALUE")

  --listen HOST:PORT     address to serve on (default 127.0.0.1:8079; port 0 picks a free
                         port). HOST is an IP address or localhost; it must be loopback
                         unless --allow-remote is given.
  --allow-remote         allow a non-loopback --listen address.
  --port-file PATH       after binding, write the port (decimal + newline) to PATH atomically
                         (PATH.tmp, then rename).
  --identity client_id=ID[,object_id=OID][,mi_res_id=RESID]
                         an identity the emulator knows (repeatable). The first is the default
                         for requests that name none. A missing object_id is derived from the
                         client_id; a missing mi_res_id names the client_id. Without any
                         --identity: client_id 11111111-1111-1111-1111-111111111111,
                         object_id 22222222-2222-2222-2222-222222222222.
  --lifetime SECONDS     token lifetime (default 3600, min 1).
  --rate-limit N         throttle the token routes as IMDS does (20 per VM): beyond N requests
                         per second (bursts up to N), answer 429 with Retry-After (whole
                         seconds). Default: no limit.
  --max-concurrent N     also answer 429 + Retry-After: 1 to a token request that arrives while
                         N are in flight (IMDS allows 5). Default: no limit.
  --tenant ID            tenant id for the tid claim (default 72f988bf-0000-0000-0000-000000000000).
  --issuer URL           iss claim (default https://sts.windows.net/{tenant}/).
  --public-key-out PATH  write the signing public key as PEM (SubjectPublicKeyInfo) at start.
  --identity-header SECRET
                         also serve App Service's managed-identity route, GET /msi/token
                         (api-version 2019-08-01), to callers that send X-IDENTITY-HEADER: SECRET.
  --entra-listen HOST:PORT
                         also serve an Entra-like token endpoint over TLS:
                         POST /{tenant}/oauth2/v2.0/token (client credentials with a federated
                         client assertion). Loopback unless --allow-remote. Needs:
  --tls-cert FILE        PEM server certificate chain for --entra-listen.
  --tls-key FILE         PEM private key of --tls-cert.
  --sa-issuer-key FILE   PEM public key of the "service-account issuer" that signs client
                         assertions (RS256, aud api://AzureADTokenExchange, exp, sub).
  --federated-client client_id=ID,sub=SUBJECT[,object_id=OID][,mi_res_id=RESID]
                         an application that assertions with sub=SUBJECT (e.g.
                         system:serviceaccount:NS:NAME) may get tokens for (repeatable).
  --entra-port-file PATH after binding, write the --entra-listen port to PATH atomically.
  --log-format json|text log format on stdout (default json).
  --log-level LEVEL      trace|debug|info|warn|error|critical|off (default info).
  --help                 show this text.

A fresh RSA-2048 key is generated at every start. Routes: GET /metadata/identity/oauth2/token,
GET /msi/token (with --identity-header),
GET /_emulator/jwks (also /.well-known/jwks.json), POST /_emulator/faults,
GET /_emulator/stats, GET /_emulator/calls, POST /_emulator/reset (and with --entra-listen, over TLS:
POST /{tenant}/oauth2/v2.0/token; faults apply to every token route). See tools/imds-emulator/README.md.
Exit codes: 0 after SIGINT/SIGTERM, 2 for bad flags or a start-up failure a flag caused,
1 for other start-up failures.
)";
}

}  // namespace imds_emulator
