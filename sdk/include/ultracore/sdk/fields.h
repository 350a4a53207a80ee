#pragma once
/// @file
/// Reading event_data fields with clear errors. Header only; every function is pure.
/// Errors are kInvalidEvent naming the event type and the field, so the engine's on_error
/// policy handles them as poison.

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>

#include "ultracore/sdk/event.h"
#include "ultracore/sdk/status.h"

namespace ultracore::sdk {

inline Status fieldError(const Event& event, const char* field, const std::string& problem) {
  return Status::invalidEvent(event.eventType() + ": field '" + field + "' " + problem);
}

/// A required non-empty string field.
inline Result<std::string> requiredString(const Event& event, const char* field) {
  const auto it = event.data().find(field);
  if (it == event.data().end() || it->is_null()) return fieldError(event, field, "is missing");
  if (!it->is_string()) return fieldError(event, field, "must be a string");
  auto value = it->get<std::string>();
  if (value.empty()) return fieldError(event, field, "is empty");
  return value;
}

/// Whether the event carries the field at all (a JSON null counts: it clears the value).
inline bool hasField(const Event& event, const char* field) {
  return event.data().contains(field);
}

/// An optional string field: nullopt when absent or null; an error when of another type.
inline Result<std::optional<std::string>> optionalString(const Event& event, const char* field) {
  const auto it = event.data().find(field);
  if (it == event.data().end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return fieldError(event, field, "must be a string or null");
  return std::optional<std::string>(it->get<std::string>());
}

/// True for an exact decimal literal: optional '-', digits, optional '.' and digits.
inline bool isDecimalLiteral(const std::string& text) {
  std::size_t i = (!text.empty() && text[0] == '-') ? 1 : 0;
  std::size_t digits = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++digits;
  if (digits == 0) return false;
  if (i == text.size()) return true;
  if (text[i] != '.') return false;
  ++i;
  std::size_t fraction = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++fraction;
  return fraction > 0 && i == text.size();
}

/// An exact decimal amount as text from a JSON value: a decimal string ("100.25") or a JSON
/// number (written back in its shortest exact form); never goes through arithmetic on
/// doubles. `positive` also rejects zero and negative amounts. The error message says what is
/// wrong ("is not a decimal: 'x'"), without naming the field.
inline Result<std::string> decimalText(const nlohmann::json& value, bool positive) {
  std::string text;
  if (value.is_null()) return Status::invalidArgument("is missing");
  if (value.is_string()) {
    text = value.get<std::string>();
  } else if (value.is_number_integer() || value.is_number_unsigned()) {
    text = value.dump();
  } else if (value.is_number_float() && std::isfinite(value.get<double>())) {
    text = value.dump();
    if (text.find_first_of("eE") != std::string::npos) {
      return Status::invalidArgument("must be a plain decimal, got " + text);
    }
  } else {
    return Status::invalidArgument("must be a decimal string or number");
  }
  if (!isDecimalLiteral(text)) return Status::invalidArgument("is not a decimal: '" + text + "'");
  if (positive) {
    const bool negative = text[0] == '-';
    const bool zero = text.find_first_not_of("-0.") == std::string::npos;
    if (negative || zero) return Status::invalidArgument("must be greater than 0, got " + text);
  }
  return text;
}

/// An exact decimal amount as text, for a NUMERIC column (see decimalText).
inline Result<std::string> decimalField(const Event& event, const char* field, bool positive) {
  const auto it = event.data().find(field);
  if (it == event.data().end() || it->is_null()) return fieldError(event, field, "is missing");
  auto text = decimalText(*it, positive);
  if (!text) return fieldError(event, field, text.status().message());
  return text;
}

/// When the event happened: occurred_at, or the record's Kafka timestamp when absent.
inline std::string occurredAtOrTimestamp(const Event& event) {
  if (!event.occurredAt().empty()) return event.occurredAt();
  const std::time_t seconds = static_cast<std::time_t>(event.timestampMs() / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[40];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buffer, static_cast<int>(event.timestampMs() % 1000));
  return out;
}

}  // namespace ultracore::sdk
