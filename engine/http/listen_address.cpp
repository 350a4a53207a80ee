#include "engine/http/listen_address.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

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

}  // namespace ultracore::engine
