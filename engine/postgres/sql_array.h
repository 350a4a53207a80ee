#pragma once
/// @file
/// PostgreSQL array literals: how a batch travels in one parameter ($1::text[]) through
/// libpqxx 6.4's exec_params, which cannot take a container.

#include <string>
#include <vector>

#include "ultracore/sdk/writer.h"

namespace ultracore::engine {

/// `{"a","b\"c",NULL}`: every element double-quoted with `"` and `\` escaped.
std::string toArrayLiteral(const std::vector<sdk::Value>& values);
std::string toArrayLiteral(const std::vector<std::string>& values);

/// Parses a one-dimensional array literal as PostgreSQL prints it (text output).
std::vector<sdk::Value> parseArrayLiteral(const std::string& literal);

}  // namespace ultracore::engine
