#include "tools/ctl/ctl_context.h"

#include "engine/manifest/manifest.h"

namespace ultracore::ctl {
namespace {

/// The URL without a password, for messages.
std::string redact(const std::string& url) {
  const auto scheme = url.find("://");
  const auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + ":***" + url.substr(at);
}

}  // namespace

std::string CtlContext::postgresUrl() const {
  if (!postgres_url.empty()) return postgres_url;
  const auto manifest = engine::loadManifest(config);
  if (manifest.postgres_url.empty()) {
    throw CtlError(config + ": no postgres.url (or pass --postgres-url)", 2);
  }
  return manifest.postgres_url;
}

std::unique_ptr<pqxx::connection> CtlContext::connect() const {
  const std::string url = postgresUrl();
  try {
    return std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    throw CtlError("cannot connect to PostgreSQL at " + redact(url) + ": " + e.what());
  }
}

std::map<std::string, std::string> CtlContext::kafkaProperties(
    const engine::Manifest& manifest) const {
  std::map<std::string, std::string> properties = manifest.kafka;
  if (!bootstrap.empty()) properties["bootstrap.servers"] = bootstrap;
  const auto it = properties.find("bootstrap.servers");
  if (it == properties.end() || it->second.empty()) {
    throw CtlError(config + ": no kafka bootstrap.servers (or pass --bootstrap)", 2);
  }
  return properties;
}

}  // namespace ultracore::ctl
