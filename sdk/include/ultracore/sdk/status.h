#pragma once
/// @file
/// Status and Result: how every SDK call reports failure. No exception crosses the plugin
/// boundary; the guard in plugin.h turns anything a plugin throws into a Status.

#include <optional>
#include <string>
#include <utility>

namespace ultracore::sdk {

enum class StatusCode : int {
  kOk = 0,
  /// The event's content is unusable for this projection (bad field, unknown type it must
  /// handle). Poison: follows the projection's on_error policy.
  kInvalidEvent = 1,
  /// The handler failed for a reason of its own (e.g. an event for an unknown aggregate).
  /// Poison: follows the projection's on_error policy.
  kHandlerError = 2,
  /// A statement failed in PostgreSQL because of the data (constraint, bad cast).
  kDatabaseError = 3,
  /// The infrastructure failed (connection lost, serialization failure, deadlock). The engine
  /// retries; a plugin should return it unchanged.
  kTransient = 4,
  /// A request to the plugin was invalid (bad configuration, bad argument).
  kInvalidArgument = 5,
};

/// Value type; cheap to copy. Thread-compatible.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  static Status invalidEvent(std::string message) {
    return {StatusCode::kInvalidEvent, std::move(message)};
  }
  static Status handlerError(std::string message) {
    return {StatusCode::kHandlerError, std::move(message)};
  }
  static Status invalidArgument(std::string message) {
    return {StatusCode::kInvalidArgument, std::move(message)};
  }

  bool isOk() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

/// A value or the Status that explains its absence.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool isOk() const { return status_.isOk() && value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Status& status() const { return status_; }
  const T& value() const { return *value_; }
  T& value() { return *value_; }
  const T* operator->() const { return &*value_; }
  T* operator->() { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace ultracore::sdk
