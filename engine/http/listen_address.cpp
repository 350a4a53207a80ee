#include "engine/http/listen_address.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>

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
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    // Small JSON answers must not wait for Nagle (measured: ~40 ms per answer).
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  });
  if (address.port == 0) return server.bind_to_any_port(address.host);
  return server.bind_to_port(address.host, address.port) ? address.port : -1;
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
