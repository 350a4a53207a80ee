#pragma once
/// @file
/// JSON answers of the admin endpoint and its console: a body, or the error object
/// {"error": {"status", "code", "message"}}.

#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace ultracore::engine {

inline void sendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

inline void sendError(httplib::Response& res, int status, const std::string& code,
                      const std::string& message) {
  sendJson(res, status, {{"error", {{"status", status}, {"code", code}, {"message", message}}}});
}

}  // namespace ultracore::engine
