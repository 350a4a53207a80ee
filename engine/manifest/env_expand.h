#pragma once
/// @file
/// `${VAR}` / `${VAR:-default}` / `$$` expansion of manifest values (rules in manifest.h, at
/// EnvLookup). Pure function; safe from any thread if `env` is.

#include <stdexcept>
#include <string>
#include <string_view>

#include "engine/manifest/manifest.h"

namespace ultracore::engine {

/// What went wrong in one value; the manifest parser adds the value's location.
class EnvExpansionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Returns `text` with references expanded. Throws EnvExpansionError for an unset `${VAR}`
/// without default, an unterminated `${` or an invalid variable name.
std::string expandEnv(std::string_view text, const EnvLookup& env);

}  // namespace ultracore::engine
