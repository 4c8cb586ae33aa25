// imds-emulator: parse flags, wire the emulator and its server, run until SIGINT/SIGTERM.
#include "imds_emulator/cli.hpp"
#include "imds_emulator/server.hpp"

#include <boost/asio/signal_set.hpp>

#include <iostream>

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
  const Options& options = *cli.options;
  tb::log::init(options.log_format, options.log_level);
  try {
    Emulator emulator(options.config, Signer::generate());
    boost::asio::io_context io;
    std::string error;
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
    if (!options.public_key_out.empty() &&
        !write_file_atomically(options.public_key_out, emulator.signer().public_key_pem(), error)) {
      std::cerr << "imds-emulator: --public-key-out: " << error << '\n';
      return 2;
    }
    if (!options.port_file.empty() &&
        !write_file_atomically(options.port_file, std::to_string(server->port()) + "\n", error)) {
      std::cerr << "imds-emulator: --port-file: " << error << '\n';
      return 2;
    }
    server->start();
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      tb::log::info("stopping", {{"signal", signal}});
      server->stop();
    });
    nlohmann::json identities = nlohmann::json::array();
    for (const auto& identity : emulator.config().identities)
      identities.push_back(identity.client_id);
    tb::log::info("listening", {{"host", options.host},
                                {"port", server->port()},
                                {"kid", emulator.signer().kid()},
                                {"issuer", emulator.config().issuer},
                                {"identities", identities}});
    io.run();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "imds-emulator: " << e.what() << '\n';
    return 1;
  }
}
