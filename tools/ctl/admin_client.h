#pragma once
/// @file
/// The engine's admin endpoint as ultracore-ctl reaches it: admin.listen from the manifest (or
/// --admin-url), with the bearer token of admin.token (else api.token).

#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "engine/manifest/manifest.h"

namespace ultracore::ctl {

class AdminClient {
 public:
  /// `admin_url`: http://HOST:PORT; empty: the manifest's admin.listen. Throws CtlError (exit 2)
  /// for an address without a port.
  AdminClient(const engine::Manifest& manifest, const std::string& admin_url);

  /// False when admin.listen has port 0 and no --admin-url was given: nothing to call.
  bool known() const { return port_ > 0; }
  /// host:port, for messages.
  std::string address() const;

  /// One GET or POST; the result is empty when the endpoint does not answer at all.
  httplib::Result call(const std::string& method, const std::string& path) const;

  /// A call that must answer 2xx: returns its JSON body. Throws CtlError naming `what` and the
  /// engine's error message (exit 2 for 404, else 1), or saying the endpoint does not answer.
  nlohmann::json request(const std::string& method, const std::string& path,
                         const std::string& what) const;

 private:
  std::string host_;
  int port_ = 0;
  std::string token_;
};

}  // namespace ultracore::ctl
