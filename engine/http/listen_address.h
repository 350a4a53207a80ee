#pragma once
/// @file
/// How the engine's HTTP servers (API, admin) bind `host:port` from the manifest.

#include <string>
#include <vector>

namespace httplib {
class Server;
}

namespace ultracore::engine {

struct ListenAddress {
  std::string host;  ///< without IPv6 brackets
  int port = 0;      ///< 0: any free port
};

/// "127.0.0.1:8000" or "[::1]:8000" (validated by the manifest loader).
ListenAddress parseListenAddress(const std::string& listen);

/// Sets SO_REUSEADDR and TCP_NODELAY on the server's sockets, and not httplib's default
/// SO_REUSEPORT, which would let a second process bind the same port and silently take some
/// of its connections: a busy port must fail at start-up. Then binds; port 0 picks a free
/// port. Returns the bound port, or -1.
int bindServer(httplib::Server& server, const ListenAddress& address);

/// The Host names a server answers to (against DNS rebinding): `configured` when given; else,
/// when it listens on loopback, its listen host, localhost, 127.0.0.1 and [::1]; else none,
/// which allows any Host (a port others reach needs a token anyway).
std::vector<std::string> allowedHosts(const ListenAddress& address,
                                      const std::vector<std::string>& configured);

/// Whether the name in a Host header (its port ignored, case-insensitive) is in `allowed`. An
/// empty list allows every Host; a request without one (HTTP/1.0) is allowed.
bool hostAllowed(const std::string& host_header, const std::vector<std::string>& allowed);

}  // namespace ultracore::engine
