// imds-emulator: parse flags, wire the emulator and its server, run until SIGINT/SIGTERM.
#include "imds_emulator/cli.hpp"
#include "imds_emulator/server.hpp"
#include "tb/files.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>

#include <openssl/ssl.h>

#include <fstream>
#include <iostream>
#include <sstream>

namespace {

// The Entra endpoint's TLS server context: TLS 1.2+, the given chain and key.
std::shared_ptr<boost::asio::ssl::context> tls_server_context(const std::string& cert,
                                                              const std::string& key) {
  auto context = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  context->use_certificate_chain_file(cert, ec);
  if (ec) throw std::invalid_argument("--tls-cert: cannot load " + cert + ": " + ec.message());
  context->use_private_key_file(key, boost::asio::ssl::context::pem, ec);
  if (ec) throw std::invalid_argument("--tls-key: cannot load " + key + ": " + ec.message());
  return context;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace imds_emulator;
  const CommandLine cli = parse_command_line(std::vector<std::string_view>(argv + 1, argv + argc));
  if (cli.help) {
    std::cout << usage();
    return 0;
  }
  if (!cli.options) {
    std::cerr << "imds-emulator: " << cli.error << '\n';
    return 2;
  }
  Options options = *cli.options;
  tb::log::init(options.log_format, options.log_level);
  std::shared_ptr<boost::asio::ssl::context> tls;
  if (options.entra_enabled) {
    std::ifstream in(options.sa_issuer_key, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    options.config.sa_issuer_key = tb::load_public_key_pem(pem.str());
    if (!in || !options.config.sa_issuer_key) {
      std::cerr << "imds-emulator: --sa-issuer-key: " << options.sa_issuer_key << ": "
                << (in ? "not a PEM public key (-----BEGIN PUBLIC KEY-----)" : "cannot read it")
                << '\n';
      return 2;
    }
    try {
      tls = tls_server_context(options.tls_cert, options.tls_key);
    } catch (const std::invalid_argument& e) {
      std::cerr << "imds-emulator: " << e.what() << '\n';
      return 2;
    }
  }
  try {
    Emulator emulator(options.config, Signer::generate());
    boost::asio::io_context io;
    const boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address(options.host),
                                                  options.port);
    std::optional<Server> server;
    try {
      server.emplace(io, emulator, endpoint);
    } catch (const boost::system::system_error& e) {
      std::cerr << "imds-emulator: --listen: cannot listen on " << options.host << ':'
                << options.port << ": " << e.code().message() << '\n';
      return 2;
    }
    std::optional<Server> entra;
    if (tls) {
      try {
        entra.emplace(io, emulator,
                      boost::asio::ip::tcp::endpoint(
                          boost::asio::ip::make_address(options.entra_host), options.entra_port),
                      std::chrono::seconds(30), tls);
      } catch (const boost::system::system_error& e) {
        std::cerr << "imds-emulator: --entra-listen: cannot listen on " << options.entra_host << ':'
                  << options.entra_port << ": " << e.code().message() << '\n';
        return 2;
      }
    }
    const auto write = [](std::string_view flag, const std::string& path,
                          std::string_view content) {
      if (path.empty()) return true;
      if (auto problem = tb::write_file_atomically(path, content)) {
        std::cerr << "imds-emulator: " << flag << ": " << *problem << '\n';
        return false;
      }
      return true;
    };
    if ((entra && !write("--entra-port-file", options.entra_port_file,
                         std::to_string(entra->port()) + "\n")) ||
        !write("--public-key-out", options.public_key_out, emulator.signer().public_key_pem()) ||
        !write("--port-file", options.port_file, std::to_string(server->port()) + "\n")) {
      return 2;
    }
    if (entra) entra->start();
    server->start();
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      tb::log::info("stopping", {{"signal", signal}});
      server->stop();
      if (entra) entra->stop();
    });
    nlohmann::json identities = nlohmann::json::array();
    for (const auto& identity : emulator.config().identities)
      identities.push_back(identity.client_id);
    tb::log::info("listening", {{"host", options.host},
                                {"port", server->port()},
                                {"kid", emulator.signer().kid()},
                                {"issuer", emulator.config().issuer},
                                {"identities", identities},
                                {"entra_port", entra ? entra->port() : 0}});
    io.run();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "imds-emulator: " << e.what() << '\n';
    return 1;
  }
}
