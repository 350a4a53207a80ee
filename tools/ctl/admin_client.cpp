#include "tools/ctl/admin_client.h"

#include <chrono>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

AdminClient::AdminClient(const engine::Manifest& manifest, const std::string& admin_url)
    : token_(manifest.admin_token) {
  std::string hostport = admin_url;
  if (!hostport.empty()) {
    const auto scheme = hostport.find("://");
    if (scheme != std::string::npos) hostport = hostport.substr(scheme + 3);
    while (!hostport.empty() && hostport.back() == '/') hostport.pop_back();
  } else {
    hostport = manifest.admin_listen;
  }
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos) throw CtlError("admin address '" + hostport + "' has no port", 2);
  host_ = hostport.substr(0, colon);
  if (host_.size() >= 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
  if (host_.empty() || host_ == "0.0.0.0") host_ = "127.0.0.1";
  if (host_ == "::") host_ = "::1";
  try {
    port_ = std::stoi(hostport.substr(colon + 1));
  } catch (const std::exception&) {
    throw CtlError("admin address '" + hostport + "': bad port", 2);
  }
}

std::string AdminClient::address() const { return host_ + ":" + std::to_string(port_); }

httplib::Result AdminClient::call(const std::string& method, const std::string& path) const {
  if (!known()) return httplib::Result(nullptr, httplib::Error::Connection);
  httplib::Client client(host_, port_);
  client.set_connection_timeout(std::chrono::seconds(2));
  // Operator actions stop and start runners: allow them time (a switch waits for batches).
  client.set_read_timeout(std::chrono::seconds(method == "POST" ? 180 : 5));
  httplib::Headers headers;
  if (!token_.empty()) headers.emplace("Authorization", "Bearer " + token_);
  return method == "POST" ? client.Post(path.c_str(), headers, "", "application/json")
                          : client.Get(path.c_str(), headers);
}

nlohmann::json AdminClient::request(const std::string& method, const std::string& path,
                                    const std::string& what) const {
  if (!known()) {
    throw CtlError("admin.listen has port 0: pass --admin-url http://HOST:PORT (the engine logs it)", 2);
  }
  auto res = call(method, path);
  if (!res) {
    throw CtlError(what + ": the engine's admin endpoint at " + address() +
                   " does not answer (" + httplib::to_string(res.error()) +
                   "); is the engine running?");
  }
  const nlohmann::json body = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status / 100 != 2) {
    std::string message = res->body;
    if (body.is_object() && body.contains("error")) message = body["error"].value("message", message);
    throw CtlError(what + ": HTTP " + std::to_string(res->status) + ": " + message,
                   res->status == 404 ? 2 : 1);
  }
  if (body.is_discarded()) throw CtlError(what + ": the admin endpoint answered no JSON");
  return body;
}

}  // namespace ultracore::ctl
