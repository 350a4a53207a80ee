#include "engine/http/event_id.h"

#include <stdexcept>

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/string_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

namespace ultracore::engine {
namespace {

/// UltraCore's namespace for command event ids: uuidV5 of the URL namespace
/// (6ba7b811-9dad-11d1-80b4-00c04fd430c8) and "urn:ultracore:command-event-id".
constexpr const char* kCommandEventNamespace = "2697f903-587e-5708-879a-8b908210d391";

/// Length-prefixed, so that no two different field lists give the same name.
void appendField(std::string& name, const std::string& field) {
  name += std::to_string(field.size());
  name += ':';
  name += field;
}

}  // namespace

std::string uuidV5(const std::string& namespace_uuid, const std::string& name) {
  boost::uuids::uuid ns;
  try {
    ns = boost::uuids::string_generator()(namespace_uuid);
  } catch (const std::runtime_error&) {
    throw std::invalid_argument("not a UUID: '" + namespace_uuid + "'");
  }
  return boost::uuids::to_string(boost::uuids::name_generator_sha1(ns)(name));
}

std::string commandEventId(const std::string& tenant, const std::string& idempotency_key,
                           std::size_t index, const sdk::NewEvent& event) {
  std::string name;
  appendField(name, tenant);
  appendField(name, idempotency_key);
  appendField(name, std::to_string(index));
  appendField(name, event.topic);
  appendField(name, event.event_type);
  appendField(name, event.aggregate_type);
  appendField(name, event.aggregate_id);
  appendField(name, event.event_data.dump());  // objects dump with sorted keys: canonical
  return uuidV5(kCommandEventNamespace, name);
}

}  // namespace ultracore::engine
