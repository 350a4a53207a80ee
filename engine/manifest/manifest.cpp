#include "engine/manifest/manifest.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "engine/manifest/env_expand.h"
#include "engine/manifest/suggest.h"
#include "ultracore/sdk/config_error.h"

namespace ultracore::engine {
namespace {

// what() must stay one line even when a message quotes a multi-line value.
std::string oneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out;
}

std::string formatWhat(const SourceLocation& where, const std::string& message) {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
         ": " + oneLine(message);
}

}  // namespace

ManifestError::ManifestError(SourceLocation where, const std::string& message)
    : std::runtime_error(formatWhat(where, message)),
      where_(std::move(where)),
      message_(message) {}

const char* toString(ErrorPolicy policy) {
  switch (policy) {
    case ErrorPolicy::kFail:
      return "fail";
    case ErrorPolicy::kSkip:
      return "skip";
    case ErrorPolicy::kDeadLetter:
      return "dead_letter";
    case ErrorPolicy::kPark:
      return "park";
  }
  return "unknown";
}

bool isLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "::1" || h == "localhost") return true;
  // 127.0.0.0/8, written as four decimal numbers.
  if (h.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : h) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

const PluginSpec* Manifest::findPlugin(const std::string& name) const {
  for (const PluginSpec& plugin : plugins) {
    if (plugin.name == name) return &plugin;
  }
  return nullptr;
}

const ProjectionSpec* Manifest::findProjection(const std::string& name) const {
  for (const ProjectionSpec& projection : projections) {
    if (projection.name == name) return &projection;
  }
  return nullptr;
}

const TopicSpec* Manifest::findTopic(const std::string& name) const {
  for (const TopicSpec& topic : topics) {
    if (topic.name == name) return &topic;
  }
  return nullptr;
}

namespace {

constexpr std::size_t kMaxSchemaLength = 48;
constexpr std::size_t kMaxTopicLength = 249;  // Kafka's own limit
constexpr long long kMaxBodyBytes = 1LL << 30;

const std::vector<std::string> kTopLevelKeys = {"kafka",   "postgres",    "api",   "admin",
                                                "plugins", "projections", "topics"};
const std::vector<std::string> kPostgresKeys = {"url", "api_url", "api_role"};
const std::vector<std::string> kApiKeys = {"listen",   "token", "max_body_bytes",
                                           "insecure", "hosts", "tokens"};
const std::vector<std::string> kApiTokenKeys = {"token", "tenants", "gateway", "user"};
const std::vector<std::string> kAdminKeys = {"listen", "token", "insecure", "hosts"};
const std::vector<std::string> kPluginKeys = {"name", "library"};
const std::vector<std::string> kProjectionKeys = {
    "name",   "plugin", "projection", "topics",   "batch", "on_error",
    "retries", "schema", "group_id",  "kafka",    "config", "workers", "dedupe"};
const std::vector<std::string> kDedupeKeys = {"retention"};
const std::vector<std::string> kTopicKeys = {"partitions", "replication_factor", "config"};
constexpr int kMaxPartitions = 100000;
constexpr int kMaxReplicationFactor = 32767;  // Kafka's INT16 field
const std::vector<std::string> kBatchKeys = {"max_events", "max_wait_ms", "flush_when_idle",
                                             "synchronous_commit"};
const std::vector<std::pair<std::string, ErrorPolicy>> kErrorPolicies = {
    {"fail", ErrorPolicy::kFail},
    {"skip", ErrorPolicy::kSkip},
    {"dead_letter", ErrorPolicy::kDeadLetter},
    {"park", ErrorPolicy::kPark}};

/// An operator's value inside a message: quoted, control characters visible, not too long.
std::string inQuotes(std::string_view value) {
  constexpr std::size_t kMaxShown = 60;
  std::string out = "'";
  for (std::size_t i = 0; i < value.size() && i < kMaxShown; ++i) {
    const char c = value[i];
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (value.size() > kMaxShown) out += "...";
  return out + "'";
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

bool isLower(char c) { return c >= 'a' && c <= 'z'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

/// Projection and plugin names: [a-z][a-z0-9_]*.
bool isName(std::string_view name) {
  if (name.empty() || !isLower(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isLower(c) || isDigit(c) || c == '_'; });
}

/// Schema names: [a-z_][a-z0-9_]*, so they need no quoting in SQL.
bool isIdentifier(std::string_view name) {
  if (name.empty() || isDigit(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isLower(c) || isDigit(c) || c == '_'; });
}

bool isTopicName(std::string_view topic) {
  if (topic.empty() || topic.size() > kMaxTopicLength || topic == "." || topic == "..") {
    return false;
  }
  return std::all_of(topic.begin(), topic.end(), [](char c) {
    return isLower(c) || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '.' || c == '_' ||
           c == '-';
  });
}

/// host:port with a numeric port (0 lets the OS choose); an IPv6 host needs brackets.
bool isListenAddress(std::string_view address) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.empty() || port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), isDigit)) return false;
  if (std::stoi(std::string(port)) > 65535) return false;
  if (host.front() == '[') return host.size() > 2 && host.back() == ']';
  return host.find(':') == std::string_view::npos;
}

std::optional<long long> parseInteger(std::string_view text, bool& out_of_range) {
  out_of_range = false;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::invalid_argument || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range) {
    out_of_range = true;
    return std::nullopt;
  }
  return value;
}

/// YAML 1.2 core schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool looksLikeFloat(std::string_view text) {
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t start = i;
    while (i < text.size() && isDigit(text[i])) ++i;
    return i - start;
  };
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  const std::size_t whole = digits();
  std::size_t fraction = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    fraction = digits();
  }
  if (whole == 0 && fraction == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == text.size();
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return inQuotes(node.Scalar());
    default:
      return "an empty value";
  }
}

/// Records where each document of a YAML stream starts; ignores everything else.
class DocumentStarts final : public YAML::EventHandler {
 public:
  const YAML::Mark& last() const { return last_; }

  void OnDocumentStart(const YAML::Mark& mark) override { last_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  YAML::Mark last_;
};

/// Where yaml-cpp 0.7's YAML::LoadAll would loop forever on TEXT, if it would.
///
/// A token that cannot start a node where a document's root should start (a ',' outside
/// [..] and {..}: ",", "a: 1\n...\n,") is neither consumed nor an error: yaml-cpp reports a
/// null document without moving on, and LoadAll asks for the next document at the same token
/// forever, allocating a node each time (jbeder/yaml-cpp#1040, fixed upstream by PR #1319 in a
/// release after Debian's 0.7). The parser is deterministic, so a document that starts where
/// the previous one started consumed nothing and the next will not either: this pass stops
/// there. Otherwise it sees the same documents (or the same exception) as LoadAll will.
std::optional<YAML::Mark> loadAllWouldLoop(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  std::optional<int> previous;
  while (parser.HandleNextDocument(starts)) {
    if (previous && *previous == starts.last().pos) return starts.last();
    previous = starts.last().pos;
  }
  return std::nullopt;
}

/// One `key: value` of a YAML map.
struct Field {
  std::string name;
  YAML::Node key;
  YAML::Node value;
};

/// A YAML map whose keys were checked against the allowed ones.
struct Section {
  SourceLocation where;  ///< the map, or its key when the map is empty: for "missing" errors
  std::string context;   ///< "in batch", "at top level", ...
  std::vector<Field> fields;

  const Field* find(std::string_view name) const {
    for (const Field& field : fields) {
      if (field.name == name) return &field;
    }
    return nullptr;
  }
};

class Parser {
 public:
  Parser(const std::filesystem::path& file, const EnvLookup& env)
      : file_(file), file_name_(file.string()), env_(env) {
    std::error_code ec;
    const std::filesystem::path absolute = std::filesystem::absolute(file, ec);
    base_dir_ = ec ? file.parent_path() : absolute.parent_path();
  }

  Manifest parse(const std::string& text) {
    text_ = text;
    std::vector<YAML::Node> documents;
    try {
      if (const std::optional<YAML::Mark> stuck = loadAllWouldLoop(text)) {
        const auto pos = static_cast<std::size_t>(stuck->pos);
        const bool printable =
            pos < text.size() && std::isprint(static_cast<unsigned char>(text[pos]));
        fail(at(*stuck), printable ? "YAML syntax error: unexpected '" + std::string(1, text[pos]) +
                                         "' where a value should start"
                                   : "YAML syntax error: unexpected token where a value "
                                     "should start");
      }
      documents = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      fail(at(e.mark), "YAML syntax error: " + e.msg);
    }
    if (documents.empty() || documents.front().IsNull()) {
      fail({file_name_, 1, 1},
           "manifest is empty; expected a map with postgres, plugins and projections");
    }
    for (std::size_t i = 1; i < documents.size(); ++i) {
      if (!documents[i].IsNull()) {
        fail(at(documents[i]), "manifest holds more than one YAML document ('---'); use one");
      }
    }
    const YAML::Node& root = documents.front();
    if (!root.IsMap()) {
      fail(at(root), "manifest must be a map of sections (" + joined(kTopLevelKeys) +
                         "), got " + describe(root));
    }
    const Section top = openSection(root, at(root), "at top level", kTopLevelKeys);

    Manifest manifest;
    manifest.file = file_;
    if (const Field* kafka = top.find("kafka")) {
      manifest.kafka = properties(*kafka, "'group.id' is set per projection (its group_id); "
                                          "remove it from the top-level kafka");
    }
    parsePostgres(top, manifest);
    parseApi(top, manifest);
    parseAdmin(top, manifest);
    parsePlugins(require(top, "plugins"), manifest);
    if (const Field* topics = top.find("topics")) parseTopicSection(*topics, manifest);
    parseProjections(require(top, "projections"), manifest);
    return manifest;
  }

 private:
  // --- locations and errors -------------------------------------------------------------

  SourceLocation at(const YAML::Mark& mark) const {
    if (mark.line < 0) return {file_name_, 0, 0};
    return {file_name_, mark.line + 1, mark.column + 1};
  }
  SourceLocation at(const YAML::Node& node) const { return at(node.Mark()); }
  /// An empty value has no position of its own (yaml-cpp gives the next token's): use the key.
  SourceLocation at(const Field& field) const {
    return field.value.IsNull() ? at(field.key) : at(field.value);
  }

  [[noreturn]] void fail(SourceLocation where, const std::string& message) const {
    throw ManifestError(std::move(where), message);
  }

  // --- maps -------------------------------------------------------------------------------

  /// The entries of a map in document order; keys must be scalars and unique.
  std::vector<Field> entries(const YAML::Node& map, const std::string& context) const {
    std::vector<Field> fields;
    if (!map.IsMap()) return fields;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) {
        fail(at(key), "keys " + context + " must be plain names, got " + describe(key));
      }
      for (const Field& earlier : fields) {
        if (earlier.name == key.Scalar()) {
          fail(at(key), "duplicate key " + inQuotes(key.Scalar()) + " " + context +
                            " (first at line " + std::to_string(at(earlier.key).line) + ")");
        }
      }
      fields.push_back({key.Scalar(), key, it->second});
    }
    return fields;
  }

  Section openSection(const YAML::Node& map, SourceLocation where, std::string context,
                      const std::vector<std::string>& allowed) const {
    std::vector<Field> fields = entries(map, context);
    Section section{std::move(where), std::move(context), std::move(fields)};
    for (const Field& field : section.fields) {
      if (std::find(allowed.begin(), allowed.end(), field.name) != allowed.end()) continue;
      std::string message = "unknown key " + inQuotes(field.name) + " " + section.context;
      if (const auto nearest = nearestName(field.name, allowed)) {
        message += "; did you mean '" + *nearest + "'?";
      } else {
        message += "; expected one of " + joined(allowed);
      }
      fail(at(field.key), message);
    }
    return section;
  }

  /// A field holding a map (an empty value counts as an empty map).
  Section openSection(const Field& field, std::string context,
                      const std::vector<std::string>& allowed) const {
    if (!field.value.IsMap() && !field.value.IsNull()) {
      fail(at(field), inQuotes(field.name) + " must be a map, got " + describe(field.value));
    }
    return openSection(field.value, at(field), std::move(context), allowed);
  }

  const Field& require(const Section& section, std::string_view name) const {
    const Field* field = section.find(name);
    if (!field) {
      fail(section.where, "missing required key '" + std::string(name) + "' " + section.context);
    }
    return *field;
  }

  // --- scalars ----------------------------------------------------------------------------

  std::string expand(const YAML::Node& scalar) const {
    try {
      return expandEnv(scalar.Scalar(), env_);
    } catch (const EnvExpansionError& e) {
      fail(at(scalar), e.what());
    }
  }

  std::string text(const Field& field) const {
    if (!field.value.IsScalar()) {
      fail(at(field), inQuotes(field.name) + " must be a string, got " + describe(field.value));
    }
    return expand(field.value);
  }

  std::string nonEmptyText(const Field& field) const {
    std::string value = text(field);
    if (value.empty()) fail(at(field), inQuotes(field.name) + " must not be empty");
    return value;
  }

  long long integer(const Field& field, long long min, long long max) const {
    const std::string what = inQuotes(field.name) + " must be an integer, got ";
    if (!field.value.IsScalar()) fail(at(field), what + describe(field.value));
    const std::string value = expand(field.value);
    bool out_of_range = false;
    const std::optional<long long> number = parseInteger(value, out_of_range);
    if (!number && !out_of_range) fail(at(field), what + inQuotes(value));
    if (out_of_range || *number < min || *number > max) {
      // An int-wide maximum is no real limit: only mention it to whoever went past it.
      const bool too_small = out_of_range ? value.front() == '-' : *number < min;
      std::string range = "between " + std::to_string(min) + " and " + std::to_string(max);
      if (max == std::numeric_limits<int>::max()) {
        range = too_small ? "at least " + std::to_string(min) : "at most " + std::to_string(max);
      }
      fail(at(field), inQuotes(field.name) + " must be " + range + ", got " + value);
    }
    return *number;
  }

  /// `forever`, or a whole number with a unit: 90s, 30m, 12h, 7d.
  std::int64_t retentionSeconds(const Field& field) const {
    const std::string what = inQuotes(field.name) +
                             " must be 'forever' or a duration such as 90s, 30m, 12h or 7d, got ";
    if (!field.value.IsScalar()) fail(at(field), what + describe(field.value));
    const std::string value = expand(field.value);
    if (value == "forever") return 0;
    static const std::vector<std::pair<char, std::int64_t>> kUnits = {
        {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    if (value.size() >= 2) {
      for (const auto& [unit, seconds] : kUnits) {
        if (value.back() != unit) continue;
        bool out_of_range = false;
        const auto number = parseInteger(std::string_view(value).substr(0, value.size() - 1),
                                         out_of_range);
        if (number && !out_of_range && *number >= 1 && *number <= 36500LL * 86400 / seconds) {
          return *number * seconds;
        }
      }
    }
    fail(at(field), what + inQuotes(value));
  }

  bool boolean(const Field& field) const {
    const std::string what = inQuotes(field.name) + " must be true or false, got ";
    if (!field.value.IsScalar()) fail(at(field), what + describe(field.value));
    const std::string value = expand(field.value);
    if (value == "true") return true;
    if (value == "false") return false;
    fail(at(field), what + inQuotes(value));
  }

  std::string listenAddress(const Field& field) const {
    std::string address = text(field);
    if (!isListenAddress(address)) {
      fail(at(field), inQuotes(field.name) + " must be host:port (e.g. 127.0.0.1:8000), got " +
                          inQuotes(address));
    }
    return address;
  }

  /// A map of librdkafka properties: any key, scalar values passed through as strings.
  /// group.id is refused: each projection's group is its `group_id`.
  std::map<std::string, std::string> properties(const Field& field,
                                                const std::string& group_id_message) const {
    if (!field.value.IsMap() && !field.value.IsNull()) {
      fail(at(field), inQuotes(field.name) + " must be a map of librdkafka properties, got " +
                          describe(field.value));
    }
    std::map<std::string, std::string> result;
    for (const Field& property : entries(field.value, "in kafka")) {
      if (property.name == "group.id") fail(at(property.key), group_id_message);
      if (!property.value.IsScalar()) {
        fail(at(property), "kafka property " + inQuotes(property.name) + " must be a string, got " +
                               describe(property.value));
      }
      result[property.name] = expand(property.value);
    }
    return result;
  }

  /// Any YAML as JSON. Quoted scalars are strings; plain ones are typed after expansion as the
  /// YAML 1.2 core schema does (null, true/false, integer, float, else string).
  /// `where` (optional) gets the location of every value by JSON pointer, `pointer` first.
  nlohmann::json toJson(const YAML::Node& node, const std::string& pointer = "",
                        std::map<std::string, ConfigValueLocation>* where = nullptr) const {
    if (where != nullptr) (*where)[pointer] = locate(node);
    switch (node.Type()) {
      case YAML::NodeType::Sequence: {
        nlohmann::json array = nlohmann::json::array();
        for (const YAML::Node& item : node) {
          array.push_back(toJson(item, pointer + "/" + std::to_string(array.size()), where));
        }
        return array;
      }
      case YAML::NodeType::Map: {
        nlohmann::json object = nlohmann::json::object();
        for (const Field& field : entries(node, "in config")) {
          object[field.name] = toJson(field.value, pointer + "/" + sdk::configPointerSegment(field.name), where);
        }
        return object;
      }
      case YAML::NodeType::Scalar:
        return scalarToJson(node);
      default:
        return nullptr;
    }
  }

  /// Where `node` and (for a scalar) its text start; a block scalar's text starts on the line
  /// after its `|` or `>`, at the indentation of its first non-blank line.
  ConfigValueLocation locate(const YAML::Node& node) const {
    ConfigValueLocation out;
    out.where = at(node);
    out.text = out.where;
    const YAML::Mark mark = node.Mark();
    if (!node.IsScalar() || mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text_.size()) {
      return out;
    }
    const char first = text_[static_cast<std::size_t>(mark.pos)];
    if (first == '"' || first == '\'') {
      out.text.column += 1;
    } else if (first == '|' || first == '>') {
      std::size_t line_start = text_.find('\n', static_cast<std::size_t>(mark.pos));
      int line = out.where.line + 1;
      while (line_start != std::string::npos) {
        ++line_start;
        std::size_t indent = 0;
        while (line_start + indent < text_.size() && text_[line_start + indent] == ' ') ++indent;
        const char c = line_start + indent < text_.size() ? text_[line_start + indent] : '\n';
        if (c != '\n' && c != '\r') {
          out.block = true;
          out.text.line = line;
          out.text.column = static_cast<int>(indent) + 1;
          break;
        }
        line_start = text_.find('\n', line_start);
        ++line;
      }
    }
    return out;
  }

  nlohmann::json scalarToJson(const YAML::Node& node) const {
    std::string value = expand(node);
    const std::string& tag = node.Tag();
    if (tag == "!" || tag == "tag:yaml.org,2002:str") return value;
    if (value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL") {
      return nullptr;
    }
    if (value == "true" || value == "True" || value == "TRUE") return true;
    if (value == "false" || value == "False" || value == "FALSE") return false;
    bool out_of_range = false;
    if (const auto number = parseInteger(value, out_of_range)) return *number;
    if (out_of_range && value.front() != '-') {
      std::string_view digits = value;
      if (digits.front() == '+') digits.remove_prefix(1);
      unsigned long long big = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), big);
      if (ec == std::errc() && end == digits.data() + digits.size()) return big;
    }
    if (looksLikeFloat(value)) {
      std::string_view digits = value;
      if (digits.front() == '+') digits.remove_prefix(1);
      double real = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), real);
      if (ec == std::errc() && end == digits.data() + digits.size()) return real;
    }
    return value;
  }

  /// The projection or plugin name written in an entry, to name it in messages about it.
  static std::string entryContext(const YAML::Node& entry, const std::string& kind) {
    if (entry.IsMap()) {
      for (auto it = entry.begin(); it != entry.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == "name" && it->second.IsScalar() &&
            isName(it->second.Scalar())) {
          return "in " + kind + " '" + it->second.Scalar() + "'";
        }
      }
    }
    return "in " + kind + "s entry";
  }

  // --- sections ---------------------------------------------------------------------------

  void parsePostgres(const Section& top, Manifest& manifest) const {
    const Section postgres = openSection(require(top, "postgres"), "in postgres", kPostgresKeys);
    manifest.postgres_url = nonEmptyText(require(postgres, "url"));
    if (const Field* url = postgres.find("api_url")) manifest.postgres_api_url = nonEmptyText(*url);
    if (const Field* role = postgres.find("api_role")) {
      manifest.postgres_api_role = text(*role);
      const std::string& name = manifest.postgres_api_role;
      bool valid = name.size() <= 63 && (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0])));
      for (unsigned char c : name) valid = valid && (std::islower(c) || std::isdigit(c) || c == '_');
      if (!valid) {
        fail(at(*role), inQuotes(role->name) + " must be a role name of [a-z0-9_] (at most 63, not starting "
                        "with a digit), or '' for none, got " + inQuotes(name));
      }
    }
  }

  void parseApi(const Section& top, Manifest& manifest) const {
    const Field* field = top.find("api");
    if (!field) return;
    const Section api = openSection(*field, "in api", kApiKeys);
    if (const Field* listen = api.find("listen")) manifest.api_listen = listenAddress(*listen);
    if (const Field* token = api.find("token")) manifest.api_token = bearerToken(*token);
    if (const Field* max = api.find("max_body_bytes")) {
      manifest.api_max_body_bytes = static_cast<std::size_t>(integer(*max, 1, kMaxBodyBytes));
    }
    if (const Field* insecure = api.find("insecure")) manifest.api_insecure = boolean(*insecure);
    if (const Field* hosts = api.find("hosts")) manifest.api_hosts = hostNames(*hosts);
    if (const Field* tokens = api.find("tokens")) parseApiTokens(*tokens, manifest);
    requireTokenOffLoopback(api, "api", manifest.api_listen, manifest.apiNeedsToken(),
                            manifest.api_insecure);
  }

  void parseAdmin(const Section& top, Manifest& manifest) const {
    const Field* field = top.find("admin");
    if (!field) return;
    const Section admin = openSection(*field, "in admin", kAdminKeys);
    if (const Field* listen = admin.find("listen")) manifest.admin_listen = listenAddress(*listen);
    if (const Field* token = admin.find("token")) manifest.admin_token = bearerToken(*token);
    if (const Field* insecure = admin.find("insecure")) manifest.admin_insecure = boolean(*insecure);
    if (const Field* hosts = admin.find("hosts")) manifest.admin_hosts = hostNames(*hosts);
    requireTokenOffLoopback(admin, "admin", manifest.admin_listen, !manifest.admin_token.empty(),
                            manifest.admin_insecure);
  }

  /// api.tokens: [{token, tenants: [..] | '*', gateway, user}]. A token serving every tenant
  /// must be declared a trusted gateway's; no token is listed twice (nor equals api.token).
  void parseApiTokens(const Field& field, Manifest& manifest) const {
    if (!field.value.IsSequence()) {
      fail(at(field), "'tokens' must be a list of {token, tenants}, got " + describe(field.value));
    }
    for (const YAML::Node& entry : field.value) {
      if (!entry.IsMap()) {
        fail(at(entry), "each tokens entry must be a map with token and tenants, got " +
                            describe(entry));
      }
      const Section section = openSection(entry, at(entry), "in api.tokens entry", kApiTokenKeys);
      ApiCredential credential;
      credential.where = at(entry);
      const Field& token = require(section, "token");
      credential.token = bearerToken(token);
      if (credential.token == manifest.api_token) {
        fail(at(token), "this token is also api.token; list it once");
      }
      for (const ApiCredential& other : manifest.api_tokens) {
        if (other.token == credential.token) {
          fail(at(token), "duplicate token (first at line " + std::to_string(other.where.line) + ")");
        }
      }
      bool gateway = false;
      if (const Field* flag = section.find("gateway")) gateway = boolean(*flag);
      const Field& tenants = require(section, "tenants");
      if (tenants.value.IsScalar() && expand(tenants.value) == "*") {
        if (!gateway) {
          fail(at(tenants), "tenants: '*' lets the token act for every tenant: declare it as a "
                            "trusted gateway's with gateway: true, or list its tenants");
        }
        credential.all_tenants = true;
      } else {
        if (!tenants.value.IsSequence() || tenants.value.size() == 0) {
          fail(at(tenants), "'tenants' must be a non-empty list of tenant ids (or '*' with "
                            "gateway: true), got " + describe(tenants.value));
        }
        for (const YAML::Node& item : tenants.value) {
          if (!item.IsScalar()) fail(at(item), "each tenant must be a string, got " + describe(item));
          std::string tenant = expand(item);
          const bool ok = !tenant.empty() && tenant.size() <= 64 &&
                          std::all_of(tenant.begin(), tenant.end(), [](char c) {
                            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                                   c == '-' || c == '.';
                          });
          if (!ok) {
            fail(at(item), inQuotes(tenant) + " is not a tenant id (1-64 characters of "
                                              "[A-Za-z0-9_.-])");
          }
          credential.tenants.push_back(std::move(tenant));
        }
      }
      if (const Field* user = section.find("user")) {
        credential.user = text(*user);
        const bool ok = !credential.user.empty() && credential.user.size() <= 128 &&
                        std::all_of(credential.user.begin(), credential.user.end(),
                                    [](char c) { return c >= 0x20 && c < 0x7f; });
        if (!ok) fail(at(*user), "'user' must be 1-128 printable ASCII characters");
      }
      manifest.api_tokens.push_back(std::move(credential));
    }
  }

  /// A bearer token: never empty (an empty one would silently turn authentication off),
  /// printable ASCII without spaces (what an Authorization header can carry).
  std::string bearerToken(const Field& field) const {
    std::string token = text(field);
    if (token.empty()) {
      fail(at(field), inQuotes(field.name) + " must not be empty (an empty token would turn "
                                             "authentication off); remove the key instead");
    }
    if (!std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
      fail(at(field), inQuotes(field.name) + " must be printable ASCII without spaces");
    }
    return token;
  }

  /// A list of host names (no port), e.g. [api.example.com, 10.0.0.5].
  std::vector<std::string> hostNames(const Field& field) const {
    if (!field.value.IsSequence()) {
      fail(at(field), inQuotes(field.name) + " must be a list of host names, got " +
                          describe(field.value));
    }
    std::vector<std::string> hosts;
    for (const YAML::Node& item : field.value) {
      if (!item.IsScalar()) fail(at(item), "each host must be a string, got " + describe(item));
      std::string host = expand(item);
      const bool ok = !host.empty() && host.size() <= 253 &&
                      std::all_of(host.begin(), host.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                               c == '-' || c == ':' || c == '[' || c == ']';
                      });
      if (!ok) {
        fail(at(item), inQuotes(host) + " is not a host name (letters, digits, '.', '-'; an "
                                        "IPv6 address in brackets; no port)");
      }
      std::transform(host.begin(), host.end(), host.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      hosts.push_back(std::move(host));
    }
    return hosts;
  }

  /// A port other machines reach needs a token, unless `insecure: true` says otherwise.
  void requireTokenOffLoopback(const Section& section, const std::string& name,
                               const std::string& listen, bool has_token, bool insecure) const {
    if (has_token || insecure) return;
    const std::string host = listen.substr(0, listen.rfind(':'));
    if (isLoopbackHost(host)) return;
    const Field* field = section.find("listen");
    fail(field != nullptr ? at(*field) : section.where,
         name + ".listen " + inQuotes(listen) + " is reachable from other machines: set " + name +
             ".token (or " + name + ".insecure: true to serve it without authentication)");
  }

  void parsePlugins(const Field& field, Manifest& manifest) const {
    if (!field.value.IsSequence()) {
      fail(at(field), "'plugins' must be a list of {name, library}, got " + describe(field.value));
    }
    for (const YAML::Node& entry : field.value) {
      if (!entry.IsMap()) {
        fail(at(entry), "each plugins entry must be a map with name and library, got " +
                            describe(entry));
      }
      const Section section =
          openSection(entry, at(entry), entryContext(entry, "plugin"), kPluginKeys);
      PluginSpec plugin;
      plugin.where = at(entry);
      const Field& name = require(section, "name");
      plugin.name = text(name);
      if (!isName(plugin.name)) {
        fail(at(name), "plugin name " + inQuotes(plugin.name) +
                           " must match [a-z][a-z0-9_]* (a lower-case letter, then lower-case "
                           "letters, digits or '_')");
      }
      if (const PluginSpec* first = manifest.findPlugin(plugin.name)) {
        fail(at(name), "duplicate plugin name " + inQuotes(plugin.name) + " (first at line " +
                           std::to_string(first->where.line) + ")");
      }
      std::filesystem::path library = nonEmptyText(require(section, "library"));
      if (library.is_relative()) library = base_dir_ / library;
      plugin.library = library.lexically_normal();
      manifest.plugins.push_back(std::move(plugin));
    }
  }

  void parseProjections(const Field& field, Manifest& manifest) const {
    if (!field.value.IsSequence()) {
      fail(at(field), "'projections' must be a list, got " + describe(field.value));
    }
    for (const YAML::Node& entry : field.value) {
      if (!entry.IsMap()) {
        fail(at(entry), "each projections entry must be a map, got " + describe(entry));
      }
      manifest.projections.push_back(parseProjection(entry, manifest));
    }
  }

  ProjectionSpec parseProjection(const YAML::Node& entry, const Manifest& manifest) const {
    const Section section =
        openSection(entry, at(entry), entryContext(entry, "projection"), kProjectionKeys);
    ProjectionSpec spec;
    spec.where = at(entry);

    const Field& name = require(section, "name");
    const Field& plugin = require(section, "plugin");
    const Field& topics = require(section, "topics");

    spec.name = text(name);
    if (!isName(spec.name)) {
      fail(at(name), "projection name " + inQuotes(spec.name) +
                         " must match [a-z][a-z0-9_]* (a lower-case letter, then lower-case "
                         "letters, digits or '_')");
    }
    if (const ProjectionSpec* first = manifest.findProjection(spec.name)) {
      fail(at(name), "duplicate projection name " + inQuotes(spec.name) + " (first at line " +
                         std::to_string(first->where.line) + ")");
    }

    spec.plugin = text(plugin);
    spec.plugin_where = at(plugin);
    if (!manifest.findPlugin(spec.plugin)) {
      std::vector<std::string> listed;
      for (const PluginSpec& known : manifest.plugins) listed.push_back(known.name);
      std::string message = "projection " + inQuotes(spec.name) + " uses plugin " +
                            inQuotes(spec.plugin) + ", which is not in plugins:";
      if (const auto nearest = nearestName(spec.plugin, listed)) {
        message += " did you mean '" + *nearest + "'?";
      } else {
        message += listed.empty() ? " (none listed)" : " (listed: " + joined(listed) + ")";
      }
      fail(spec.plugin_where, message);
    }

    if (const Field* projection = section.find("projection")) {
      spec.projection = nonEmptyText(*projection);
      spec.projection_where = at(*projection);
    } else {
      spec.projection = spec.name;
      spec.projection_where = spec.where;
    }

    parseTopics(topics, spec, manifest);

    if (const Field* batch = section.find("batch")) {
      const Section values = openSection(*batch, "in batch", kBatchKeys);
      if (const Field* max = values.find("max_events")) {
        spec.batch.max_events = static_cast<int>(integer(*max, 1, 100000));
      }
      if (const Field* wait = values.find("max_wait_ms")) {
        spec.batch.max_wait_ms = static_cast<int>(integer(*wait, 0, 60000));
      }
      if (const Field* idle = values.find("flush_when_idle")) {
        spec.batch.flush_when_idle = boolean(*idle);
      }
      if (const Field* synchronous = values.find("synchronous_commit")) {
        spec.batch.synchronous_commit = boolean(*synchronous);
      }
    }

    if (const Field* dedupe = section.find("dedupe")) {
      const Section values = openSection(*dedupe, "in dedupe", kDedupeKeys);
      if (const Field* retention = values.find("retention")) {
        spec.dedupe_retention = retentionSeconds(*retention);
      }
    }

    if (const Field* on_error = section.find("on_error")) {
      spec.on_error = errorPolicy(*on_error);
    }
    if (const Field* retries = section.find("retries")) {
      spec.retries = static_cast<int>(integer(*retries, 0, std::numeric_limits<int>::max()));
    }
    if (const Field* workers = section.find("workers")) {
      spec.workers = static_cast<int>(integer(*workers, 1, kMaxWorkers));
    }

    if (const Field* schema = section.find("schema")) {
      spec.schema = text(*schema);
      checkSchema(*schema, spec, manifest);
    }

    if (const Field* group = section.find("group_id")) {
      spec.group_id = nonEmptyText(*group);
    } else {
      spec.group_id = "ultracore.projection." + spec.name;
    }
    for (const ProjectionSpec& other : manifest.projections) {
      if (other.group_id == spec.group_id) {
        const Field* group = section.find("group_id");
        fail(group ? at(*group) : spec.where,
             "group_id " + inQuotes(spec.group_id) + " is already used by projection " +
                 inQuotes(other.name) + " (line " + std::to_string(other.where.line) +
                 "); each projection needs its own consumer group");
      }
    }

    if (const Field* kafka = section.find("kafka")) {
      spec.kafka = properties(*kafka, "set the consumer group with the projection's 'group_id', "
                                      "not kafka 'group.id'");
    }
    if (const Field* config = section.find("config")) {
      if (!config->value.IsNull()) spec.config = toJson(config->value, "", &spec.config_where);
    }
    return spec;
  }

  /// The top-level `topics:` map: topic name -> {partitions, replication_factor, config}.
  void parseTopicSection(const Field& field, Manifest& manifest) const {
    if (!field.value.IsMap() && !field.value.IsNull()) {
      fail(at(field), "'topics' must be a map of topic name -> {partitions, replication_factor, "
                      "config}, got " + describe(field.value));
    }
    manifest.topics_declared = true;
    for (const Field& entry : entries(field.value, "in topics")) {
      TopicSpec topic;
      topic.name = entry.name;
      topic.where = at(entry.key);
      if (!isTopicName(topic.name)) {
        fail(topic.where, inQuotes(topic.name) + " is not a valid Kafka topic name (letters, "
                                                 "digits, '.', '_', '-'; at most 249 characters)");
      }
      const std::string context = "in topic '" + topic.name + "'";
      if (!entry.value.IsMap()) {
        fail(at(entry), "topic " + inQuotes(topic.name) +
                            " must be a map with partitions (and optionally replication_factor, "
                            "config), got " + describe(entry.value));
      }
      const Section section = openSection(entry.value, at(entry), context, kTopicKeys);
      topic.partitions =
          static_cast<int>(integer(require(section, "partitions"), 1, kMaxPartitions));
      if (const Field* factor = section.find("replication_factor")) {
        topic.replication_factor = static_cast<int>(integer(*factor, 1, kMaxReplicationFactor));
      }
      if (const Field* config = section.find("config")) {
        if (!config->value.IsMap() && !config->value.IsNull()) {
          fail(at(*config), "'config' of topic " + inQuotes(topic.name) +
                                " must be a map of topic configs (retention.ms, ...), got " +
                                describe(config->value));
        }
        for (const Field& property : entries(config->value, "in config of topic '" +
                                                                 topic.name + "'")) {
          if (!property.value.IsScalar()) {
            fail(at(property), "topic config " + inQuotes(property.name) +
                                   " must be a string, got " + describe(property.value));
          }
          topic.config[property.name] = expand(property.value);
        }
      }
      manifest.topics.push_back(std::move(topic));
    }
  }

  void parseTopics(const Field& field, ProjectionSpec& spec, const Manifest& manifest) const {
    if (!field.value.IsSequence()) {
      std::string message = "'topics' must be a list of topic names, got " + describe(field.value);
      if (field.value.IsScalar()) message += " (write [" + field.value.Scalar() + "])";
      fail(at(field), message);
    }
    if (field.value.size() == 0) {
      fail(at(field), "'topics' of projection " + inQuotes(spec.name) + " is empty; list at least "
                      "one topic");
    }
    for (const YAML::Node& item : field.value) {
      if (!item.IsScalar()) fail(at(item), "each topic must be a string, got " + describe(item));
      std::string topic = expand(item);
      if (!isTopicName(topic)) {
        fail(at(item), inQuotes(topic) + " is not a valid Kafka topic name (letters, digits, '.', "
                                       "'_', '-'; at most 249 characters)");
      }
      if (std::find(spec.topics.begin(), spec.topics.end(), topic) != spec.topics.end()) {
        fail(at(item), "topic " + inQuotes(topic) + " is listed twice");
      }
      // Declared topics are the ones `ultracore-ctl topics ensure` creates: one left out would
      // exist nowhere on a cluster without auto-creation, and the projection would wait forever.
      if (manifest.topics_declared && !manifest.findTopic(topic)) {
        std::vector<std::string> declared;
        for (const TopicSpec& known : manifest.topics) declared.push_back(known.name);
        std::string message = "topic " + inQuotes(topic) + " of projection " +
                              inQuotes(spec.name) + " is not declared in topics:";
        if (const auto nearest = nearestName(topic, declared)) {
          message += " did you mean '" + *nearest + "'?";
        } else {
          message += declared.empty() ? " (none declared)" : " (declared: " + joined(declared) +
                                                                 ")";
        }
        fail(at(item), message + "; declare it with its partitions");
      }
      spec.topics.push_back(std::move(topic));
    }
  }

  ErrorPolicy errorPolicy(const Field& field) const {
    const std::string value = text(field);
    std::vector<std::string> names;
    for (const auto& [name, policy] : kErrorPolicies) {
      if (name == value) return policy;
      names.push_back(name);
    }
    std::string message =
        "'on_error' must be one of " + joined(names) + "; got " + inQuotes(value);
    if (const auto nearest = nearestName(value, names)) {
      message += "; did you mean '" + *nearest + "'?";
    }
    fail(at(field), message);
  }

  void checkSchema(const Field& field, const ProjectionSpec& spec,
                   const Manifest& manifest) const {
    if (!isIdentifier(spec.schema)) {
      fail(at(field), "schema " + inQuotes(spec.schema) +
                          " must match [a-z_][a-z0-9_]* (lower-case letters, digits, '_'; "
                          "not starting with a digit)");
    }
    if (spec.schema.size() > kMaxSchemaLength) {
      fail(at(field), "schema " + inQuotes(spec.schema) + " is " +
                          std::to_string(spec.schema.size()) + " characters long; at most " +
                          std::to_string(kMaxSchemaLength));
    }
    if (spec.schema.rfind("pg_", 0) == 0) {
      fail(at(field), "schema " + inQuotes(spec.schema) +
                          " starts with 'pg_', which PostgreSQL reserves for system schemas");
    }
    for (const ProjectionSpec& other : manifest.projections) {
      if (other.schema == spec.schema) {
        fail(at(field), "schema " + inQuotes(spec.schema) + " is already used by projection " +
                            inQuotes(other.name) + " (line " + std::to_string(other.where.line) +
                            ")");
      }
    }
  }

  std::filesystem::path file_;
  std::string text_;  ///< the manifest's text (to place values inside `config:`)
  std::string file_name_;
  std::filesystem::path base_dir_;
  const EnvLookup& env_;
};

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

}  // namespace

std::string placeConfigErrors(const std::string& message, const ProjectionSpec& spec) {
  static constexpr std::string_view kMarker = "@config";
  std::string out;
  std::size_t at = 0;
  for (std::size_t hit; (hit = message.find(kMarker, at)) != std::string::npos;) {
    const std::size_t hash = message.find('#', hit);
    const std::size_t colon = hash == std::string::npos ? hash : message.find(':', hash);
    std::size_t offset = 0;
    const bool parsed =
        colon != std::string::npos &&
        std::from_chars(message.data() + hash + 1, message.data() + colon, offset).ptr ==
            message.data() + colon;
    if (!parsed) {
      out.append(message, at, hit + kMarker.size() - at);
      at = hit + kMarker.size();
      continue;
    }
    out.append(message, at, hit - at);
    std::string pointer = message.substr(hit + kMarker.size(), hash - hit - kMarker.size());
    SourceLocation where = spec.where;
    auto found = spec.config_where.find(pointer);
    bool exact = found != spec.config_where.end();
    while (found == spec.config_where.end() && !pointer.empty()) {
      pointer.resize(pointer.rfind('/'));
      found = spec.config_where.find(pointer);
    }
    if (found != spec.config_where.end()) {
      const ConfigValueLocation& value = found->second;
      where = value.where;
      if (exact && value.text.line > 0) {
        where = value.text;
        // Only a block scalar keeps the text's lines apart; others are placed on one line.
        const std::string* text = nullptr;
        const nlohmann::json* node = &spec.config;
        try {
          node = &spec.config.at(nlohmann::json::json_pointer(found->first));
        } catch (const std::exception&) {
          node = nullptr;
        }
        if (node != nullptr && node->is_string()) text = node->get_ptr<const std::string*>();
        if (text != nullptr && offset <= text->size()) {
          if (value.block) {
            const auto before = text->begin() + static_cast<std::ptrdiff_t>(offset);
            const std::size_t line_start =
                offset == 0 ? 0 : (text->rfind('\n', offset - 1) == std::string::npos
                                       ? 0
                                       : text->rfind('\n', offset - 1) + 1);
            where.line += static_cast<int>(std::count(text->begin(), before, '\n'));
            where.column += static_cast<int>(offset - line_start);
          } else {
            where.column += static_cast<int>(offset);
          }
        }
      }
    }
    out += where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ":";
    at = colon + 1;
  }
  out.append(message, at, std::string::npos);
  return out;
}

Manifest parseManifest(const std::string& text, const std::filesystem::path& file,
                       const EnvLookup& env) {
  return Parser(file, env).parse(text);
}

Manifest loadManifest(const std::filesystem::path& file) {
  const SourceLocation where{file.string(), 0, 0};
  const std::string shown = "manifest file '" + file.string() + "'";
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw ManifestError(where, "cannot read " + shown + ": " +
                                   std::make_error_code(std::errc::is_a_directory).message());
  }
  errno = 0;
  std::unique_ptr<std::FILE, FileCloser> stream(std::fopen(file.c_str(), "rb"));
  if (!stream) {
    const int error = errno;
    throw ManifestError(where, "cannot open " + shown + ": " +
                                   std::error_code(error, std::generic_category()).message());
  }
  std::string text;
  char buffer[1 << 16];
  std::size_t count = 0;
  while ((count = std::fread(buffer, 1, sizeof buffer, stream.get())) > 0) {
    text.append(buffer, count);
  }
  if (std::ferror(stream.get())) {
    const int error = errno;
    throw ManifestError(where, "cannot read " + shown + ": " +
                                   std::error_code(error, std::generic_category()).message());
  }
  return parseManifest(text, file, [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace ultracore::engine
