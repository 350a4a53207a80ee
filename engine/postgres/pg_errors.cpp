#include "engine/postgres/pg_errors.h"

#include <string>

#include <pqxx/except>

namespace ultracore::engine {

bool isTransientSqlState(const std::string& sqlstate) {
  if (sqlstate.size() != 5) return false;
  const std::string cls = sqlstate.substr(0, 2);
  // 08 connection exception, 40 transaction rollback (serialization, deadlock),
  // 53 insufficient resources, 57 operator intervention (shutdown, cancel), 58 system error.
  if (cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58") return true;
  return sqlstate == "55P03";  // lock_not_available (lock_timeout)
}

std::string sqlStateOf(const sdk::Status& status) {
  const std::string& message = status.message();
  const std::string marker = "SQLSTATE ";
  const auto at = message.find(marker);
  if (at == std::string::npos || message.size() < at + marker.size() + 5) return "";
  return message.substr(at + marker.size(), 5);
}

bool mayRecurWithTheSameWork(const std::string& sqlstate) {
  return sqlstate == "57014" || sqlstate == "53200";
}

sdk::Status statusFromCurrentException() {
  try {
    throw;
  } catch (const TransientError& e) {
    return {sdk::StatusCode::kTransient, e.what()};
  } catch (const pqxx::broken_connection& e) {
    return {sdk::StatusCode::kTransient, std::string("PostgreSQL connection lost: ") + e.what()};
  } catch (const pqxx::in_doubt_error& e) {
    return {sdk::StatusCode::kTransient, std::string("commit outcome unknown: ") + e.what()};
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    std::string message = "SQLSTATE " + state + ": " + e.what();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    if (isTransientSqlState(state)) return {sdk::StatusCode::kTransient, message};
    return {sdk::StatusCode::kDatabaseError, message};
  } catch (const pqxx::failure& e) {
    // libpqxx failures without SQLSTATE are connection-level problems.
    return {sdk::StatusCode::kTransient, std::string("PostgreSQL failure: ") + e.what()};
  } catch (const std::exception& e) {
    return {sdk::StatusCode::kDatabaseError, e.what()};
  }
}

}  // namespace ultracore::engine
