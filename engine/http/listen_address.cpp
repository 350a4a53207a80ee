#include "engine/http/listen_address.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

#include "engine/manifest/manifest.h"

namespace ultracore::engine {

ListenAddress parseListenAddress(const std::string& listen) {
  const auto colon = listen.rfind(':');
  ListenAddress address{listen.substr(0, colon), std::stoi(listen.substr(colon + 1))};
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  return address;
}

int bindServer(httplib::Server& server, const ListenAddress& address) {
  auto listening = std::make_shared<socket_t>(INVALID_SOCKET);
  server.set_socket_options([listening](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    // Small JSON answers must not wait for Nagle (measured: ~40 ms per answer).
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    *listening = sock;
  });
  const int bound = address.port == 0
                        ? server.bind_to_any_port(address.host)
                        : (server.bind_to_port(address.host, address.port) ? address.port : -1);
  // cpp-httplib 0.11 listens with a backlog of 5: when its accept thread waits for a CPU, a
  // burst of connections (2,000 idle ones in the abuse test, or 16 clients connecting at once)
  // overflows it and the kernel drops handshakes, which clients retry only after 1 s. Listening
  // again on a listening socket only changes the backlog.
  if (bound > 0 && *listening != INVALID_SOCKET) ::listen(*listening, SOMAXCONN);
  return bound;
}

std::vector<std::string> allowedHosts(const ListenAddress& address,
                                      const std::vector<std::string>& configured) {
  if (!configured.empty()) return configured;
  if (!isLoopbackHost(address.host)) return {};
  std::vector<std::string> hosts = {"localhost", "127.0.0.1", "[::1]"};
  const std::string own = address.host.find(':') != std::string::npos ? "[" + address.host + "]"
                                                                       : address.host;
  if (std::find(hosts.begin(), hosts.end(), own) == hosts.end()) hosts.push_back(own);
  return hosts;
}

bool hostAllowed(const std::string& host_header, const std::vector<std::string>& allowed) {
  if (allowed.empty() || host_header.empty()) return true;
  std::string name = host_header;
  // Drop the port: after the bracket of an IPv6 address, else after the only colon.
  const auto bracket = name.find(']');
  const auto colon = name.find(':', bracket == std::string::npos ? 0 : bracket);
  if (colon != std::string::npos && (bracket != std::string::npos || name.find(':', colon + 1) == std::string::npos)) {
    name = name.substr(0, colon);
  }
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!name.empty() && name.back() == '.') name.pop_back();  // "localhost." is localhost
  return std::find(allowed.begin(), allowed.end(), name) != allowed.end();
}

}  // namespace ultracore::engine
