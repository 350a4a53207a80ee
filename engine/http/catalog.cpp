#include "engine/http/catalog.h"

#include <algorithm>
#include <set>

#include "engine/manifest/suggest.h"
#include "ultracore/sdk/config_error.h"

namespace ultracore::engine {
namespace {

using nlohmann::json;

std::string text(const json& entry, const char* key) {
  const auto it = entry.find(key);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json schemaOf(const json& entry) {
  const auto it = entry.find("schema");
  return it == entry.end() ? json(nullptr) : *it;
}

}  // namespace

std::string CatalogRejection::message() const {
  return "event " + event_type + " on " + topic + ": " + violation.path + " " +
         violation.message + " (rule " + violation.rule + " of the schema declared by " +
         declared_by + ")";
}

json CatalogRejection::errorBody() const {
  return {{"error",
           {{"code", "event_schema_violation"},
            {"message", message()},
            {"field", violation.path},
            {"rule", violation.rule},
            {"event_type", event_type},
            {"topic", topic},
            {"declared_by", declared_by}}}};
}

EventCatalog EventCatalog::build(const Manifest& manifest, const PluginRegistry& plugins) {
  EventCatalog catalog;
  for (const auto& [name, plugin] : plugins.all()) {
    const json& declared = plugin->catalog();
    catalog.plugins_.emplace_back(name, !declared.is_null());
    if (declared.is_null()) continue;
    for (const auto& entry : declared["produces"]) {
      catalog.topics_[text(entry, "topic")][text(entry, "event_type")].producers.push_back(
          {name, text(entry, "route"), schemaOf(entry), text(entry, "description")});
    }
  }
  for (const auto& projection : manifest.projections) {
    const LoadedPlugin* plugin = plugins.find(projection.plugin);
    if (plugin == nullptr) continue;
    const std::string plugin_projection =
        projection.projection.empty() ? projection.name : projection.projection;
    std::vector<const json*> entries;
    if (plugin->catalog().is_object()) {
      for (const auto& entry : plugin->catalog()["consumes"]) {
        if (text(entry, "projection") == plugin_projection) entries.push_back(&entry);
      }
    }
    for (const auto& topic : projection.topics) {
      catalog.consumers_[topic].push_back({projection.name, projection.plugin, !entries.empty()});
      auto& types = catalog.topics_[topic];
      for (const json* entry : entries) {
        types[text(*entry, "event_type")].consumers.push_back(
            {projection.plugin, projection.name, schemaOf(*entry), text(*entry, "description")});
      }
    }
  }
  return catalog;
}

std::optional<CatalogRejection> EventCatalog::validate(const std::string& topic,
                                                       const std::string& event_type,
                                                       const json& event_data) const {
  const auto t = topics_.find(topic);
  if (t == topics_.end()) return std::nullopt;
  const auto e = t->second.find(event_type);
  if (e == t->second.end()) return std::nullopt;
  const auto check = [&](const Declaration& declaration,
                         const std::string& who) -> std::optional<CatalogRejection> {
    if (auto violation = validateJson(declaration.schema, event_data)) {
      violation->path = "/event_data" + violation->path;
      return CatalogRejection{topic, event_type, who, *violation};
    }
    return std::nullopt;
  };
  for (const auto& producer : e->second.producers) {
    if (auto rejection = check(producer, "route " + producer.owner + " (plugin " + producer.plugin + ")")) {
      return rejection;
    }
  }
  for (const auto& consumer : e->second.consumers) {
    if (auto rejection = check(consumer, "projection " + consumer.owner + " (plugin " + consumer.plugin + ")")) {
      return rejection;
    }
  }
  return std::nullopt;
}

json EventCatalog::producedBy(const std::string& plugin, const std::string& route) const {
  json out = json::array();
  for (const auto& [topic, types] : topics_) {
    for (const auto& [type, entry] : types) {
      for (const auto& producer : entry.producers) {
        if (producer.plugin == plugin && producer.owner == route) {
          out.push_back({{"topic", topic}, {"event_type", type}, {"schema", producer.schema}});
        }
      }
    }
  }
  return out;
}

bool EventCatalog::declares(const std::string& topic, const std::string& event_type) const {
  const auto t = topics_.find(topic);
  return t != topics_.end() && t->second.count(event_type) > 0;
}

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

std::vector<std::string> EventCatalog::undeclaredHandledTypes(const Manifest& manifest) const {
  std::vector<std::string> warnings;
  for (const auto& spec : manifest.projections) {
    const auto on = spec.config.find("on");
    if (on == spec.config.end() || !on->is_object()) continue;
    std::vector<std::string> declared;  // every type declared on any of its topics
    for (const auto& topic : spec.topics) {
      const auto t = topics_.find(topic);
      if (t == topics_.end()) continue;
      for (const auto& [type, unused] : t->second) declared.push_back(type);
    }
    if (declared.empty()) continue;
    for (const auto& [type, unused] : on->items()) {
      if (std::find(declared.begin(), declared.end(), type) != declared.end()) continue;
      SourceLocation where = spec.where;
      if (const auto found = spec.config_where.find("/on/" + sdk::configPointerSegment(type));
          found != spec.config_where.end()) {
        where = found->second.where;
      }
      std::string warning = where.file + ":" + std::to_string(where.line) + ":" +
                            std::to_string(where.column) + ": projection '" + spec.name +
                            "': no producer or consumer declares event type '" + type +
                            "' on its topics (" + joined(spec.topics) +
                            "), so its statements may never run";
      if (const auto near = nearestName(type, declared)) warning += "; did you mean '" + *near + "'?";
      warnings.push_back(std::move(warning));
    }
  }
  return warnings;
}

std::map<std::string, std::uint64_t> EventCatalog::undeclaredSeen(const Seen& seen) const {
  // (topic, type) -> the most any one projection applied (several consume one topic).
  std::map<std::pair<std::string, std::string>, std::uint64_t> most;
  for (const auto& [projection, counts] : seen) {
    for (const auto& [key, count] : counts) most[key] = std::max(most[key], count);
  }
  std::map<std::string, std::uint64_t> out;
  for (const auto& [topic, consumers] : consumers_) out[topic] = 0;
  for (const auto& [key, count] : most) {
    const auto& [topic, type] = key;
    bool declared = false;
    if (const auto t = topics_.find(topic); t != topics_.end()) {
      if (const auto e = t->second.find(type); e != t->second.end()) {
        declared = !e->second.consumers.empty();
      }
    }
    if (!declared) out[topic] += count;
  }
  return out;
}

json EventCatalog::toJson(const Seen& seen) const {
  std::set<std::string> topic_names;
  for (const auto& [topic, types] : topics_) topic_names.insert(topic);
  for (const auto& [topic, consumers] : consumers_) topic_names.insert(topic);
  std::map<std::pair<std::string, std::string>, json> seen_by;
  for (const auto& [projection, counts] : seen) {
    for (const auto& [key, count] : counts) {
      seen_by[key][projection] = count;
      topic_names.insert(key.first);
    }
  }
  const auto undeclared = undeclaredSeen(seen);

  json topics = json::array();
  for (const auto& topic : topic_names) {
    json consumers = json::array();
    if (const auto c = consumers_.find(topic); c != consumers_.end()) {
      for (const auto& consumer : c->second) {
        consumers.push_back({{"projection", consumer.projection},
                             {"plugin", consumer.plugin},
                             {"declares", consumer.declares}});
      }
    }
    std::set<std::string> type_names;
    const auto declared_types = topics_.find(topic);
    if (declared_types != topics_.end()) {
      for (const auto& [type, entry] : declared_types->second) type_names.insert(type);
    }
    for (const auto& [key, counts] : seen_by) {
      if (key.first == topic) type_names.insert(key.second);
    }
    json types = json::array();
    for (const auto& type : type_names) {
      json producers = json::array();
      json type_consumers = json::array();
      json schemas = json::array();
      const auto addSchema = [&](const json& schema) {
        if (schema.is_null()) return;
        if (std::find(schemas.begin(), schemas.end(), schema) == schemas.end()) {
          schemas.push_back(schema);
        }
      };
      bool consumed = false;
      if (declared_types != topics_.end()) {
        if (const auto e = declared_types->second.find(type); e != declared_types->second.end()) {
          for (const auto& p : e->second.producers) {
            producers.push_back({{"plugin", p.plugin}, {"route", p.owner}, {"schema", p.schema},
                                 {"description", p.description}});
            addSchema(p.schema);
          }
          for (const auto& c : e->second.consumers) {
            type_consumers.push_back({{"plugin", c.plugin}, {"projection", c.owner},
                                      {"schema", c.schema}, {"description", c.description}});
            addSchema(c.schema);
          }
          consumed = !e->second.consumers.empty();
        }
      }
      std::uint64_t seen_count = 0;
      json by = json::object();
      if (const auto s = seen_by.find({topic, type}); s != seen_by.end()) {
        by = s->second;
        for (const auto& [projection, count] : s->second.items()) {
          seen_count = std::max(seen_count, count.get<std::uint64_t>());
        }
      }
      types.push_back({{"event_type", type},
                       {"declared", !producers.empty() || consumed},
                       {"consumed_declared", consumed},
                       {"schemas", schemas},
                       {"producers", producers},
                       {"consumers", type_consumers},
                       {"seen", seen_count},
                       {"seen_by", by}});
    }
    const auto u = undeclared.find(topic);
    topics.push_back({{"topic", topic},
                      {"consumers", consumers},
                      {"event_types", types},
                      {"undeclared_seen", u == undeclared.end() ? 0 : u->second}});
  }
  json plugins = json::array();
  for (const auto& [name, declares] : plugins_) {
    plugins.push_back({{"plugin", name}, {"declares", declares}});
  }
  return {{"topics", topics}, {"plugins", plugins}};
}

}  // namespace ultracore::engine
