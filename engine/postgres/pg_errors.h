#pragma once
/// @file
/// Classifies what PostgreSQL (through libpqxx) threw: a transient infrastructure fault to be
/// retried, or an error caused by the data (poison, for the projection's policy).

#include <exception>
#include <stdexcept>
#include <string>

#include "ultracore/sdk/status.h"

namespace ultracore::engine {

/// A transient condition the engine itself detects inside a transaction (e.g. a generation
/// switch in progress): statusFromCurrentException maps it to kTransient, to be waited out.
class TransientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Call inside a catch block: maps the exception being handled to a Status. Connection loss,
/// serialization failures, deadlocks, lock time-outs, shutdowns and resource exhaustion are
/// kTransient; other SQL errors are kDatabaseError.
sdk::Status statusFromCurrentException();

/// True for SQLSTATE classes that name an infrastructure fault rather than bad data.
bool isTransientSqlState(const std::string& sqlstate);

/// The SQLSTATE a status built by statusFromCurrentException names ("SQLSTATE 57014: ..."),
/// wherever it sits in the message (a plugin may prefix it); empty when there is none.
std::string sqlStateOf(const sdk::Status& status);

/// Transient SQLSTATEs that the work itself may cause on every attempt: statement_timeout
/// (57014 query_canceled) and out of memory (53200). The runner retries them like any transient
/// fault, but when the same one keeps coming back it splits the batch as for poison.
bool mayRecurWithTheSameWork(const std::string& sqlstate);

}  // namespace ultracore::engine
