#pragma once
/// @file
/// Classifies what PostgreSQL (through libpqxx) threw: a transient infrastructure fault to be
/// retried, or an error caused by the data (poison, for the projection's policy).

#include <exception>

#include "ultracore/sdk/status.h"

namespace ultracore::engine {

/// Call inside a catch block: maps the exception being handled to a Status. Connection loss,
/// serialization failures, deadlocks, lock time-outs, shutdowns and resource exhaustion are
/// kTransient; other SQL errors are kDatabaseError.
sdk::Status statusFromCurrentException();

/// True for SQLSTATE classes that name an infrastructure fault rather than bad data.
bool isTransientSqlState(const std::string& sqlstate);

}  // namespace ultracore::engine
