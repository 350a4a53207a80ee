#include "engine/http/console_topics.h"

#include <algorithm>

namespace ultracore::engine {

using nlohmann::json;

namespace {

constexpr auto kMetadataTimeout = std::chrono::seconds(5);
constexpr int kWatermarkTimeoutMs = 2000;
constexpr std::size_t kMaxPoints = 120;

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json ids(const std::vector<std::int32_t>& values) {
  json out = json::array();
  for (const std::int32_t v : values) out.push_back(v);
  return out;
}

}  // namespace

TopicRates::TopicRates(std::vector<std::string> manifest_topics)
    : manifest_(manifest_topics.begin(), manifest_topics.end()) {}

void TopicRates::track(const std::vector<std::string>& topics) {
  std::lock_guard lock(mutex_);
  const std::int64_t now = nowMs();
  for (const std::string& topic : topics) {
    if (manifest_.count(topic) != 0) continue;
    if (extra_.count(topic) == 0 && manifest_.size() + extra_.size() >= kMaxTrackedTopics) continue;
    extra_[topic] = now;
  }
}

void TopicRates::sample(rd_kafka_t* rk, const std::map<std::string, TopicMetadata>& cluster,
                        std::chrono::milliseconds timeout,
                        std::chrono::steady_clock::time_point deadline) {
  std::vector<std::string> topics;
  const std::int64_t now = nowMs();
  {
    std::lock_guard lock(mutex_);
    for (auto it = extra_.begin(); it != extra_.end();) {
      if (now - it->second > kWindowMs) {
        points_.erase(it->first);
        it = extra_.erase(it);
      } else {
        ++it;
      }
    }
    topics.assign(manifest_.begin(), manifest_.end());
    for (const auto& [topic, asked] : extra_) topics.push_back(topic);
  }
  for (const std::string& topic : topics) {
    const auto described = cluster.find(topic);
    if (described == cluster.end()) continue;
    std::int64_t total = 0;
    bool complete = true;
    for (const auto& partition : described->second.partitions) {
      if (std::chrono::steady_clock::now() >= deadline) return;
      std::int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition.id, &low, &high,
                                           static_cast<int>(timeout.count())) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        complete = false;
        break;
      }
      total += high;
    }
    if (!complete) continue;
    std::lock_guard lock(mutex_);
    auto& points = points_[topic];
    points.push_back({nowMs(), total});
    while (points.size() > kMaxPoints || (!points.empty() && points.front().t_ms < nowMs() - kWindowMs)) {
      points.pop_front();
    }
  }
}

json TopicRates::rate(const std::string& topic, std::chrono::seconds window) {
  std::lock_guard lock(mutex_);
  const auto it = points_.find(topic);
  if (it == points_.end() || it->second.size() < 2) return nullptr;
  const auto& points = it->second;
  const Point& last = points.back();
  const std::int64_t since = last.t_ms - std::chrono::duration_cast<std::chrono::milliseconds>(window).count();
  auto first = points.begin();
  while (std::next(first) != points.end() && std::next(first)->t_ms <= since) ++first;
  if (first->t_ms == last.t_ms) return nullptr;
  return static_cast<double>(std::max<std::int64_t>(0, last.total - first->total)) * 1000.0 /
         static_cast<double>(last.t_ms - first->t_ms);
}

json TopicRates::history(const std::string& topic) {
  std::lock_guard lock(mutex_);
  json out = json::array();
  const auto it = points_.find(topic);
  if (it == points_.end()) return out;
  for (std::size_t i = 1; i < it->second.size(); ++i) {
    const Point& a = it->second[i - 1];
    const Point& b = it->second[i];
    if (b.t_ms <= a.t_ms) continue;
    out.push_back({{"t_ms", b.t_ms},
                   {"messages_per_second",
                    static_cast<double>(std::max<std::int64_t>(0, b.total - a.total)) * 1000.0 /
                        static_cast<double>(b.t_ms - a.t_ms)}});
  }
  return out;
}

json topicsJson(rd_kafka_t* rk, const std::vector<std::string>& manifest_topics, bool all,
                TopicRates& rates) {
  const auto cluster = describeCluster(rk, kMetadataTimeout);
  std::vector<std::string> names;
  if (all) {
    for (const auto& [name, topic] : cluster) names.push_back(name);
    rates.track(names);
  } else {
    names = manifest_topics;
  }
  json topics = json::array();
  for (const std::string& name : names) {
    const bool in_manifest =
        std::find(manifest_topics.begin(), manifest_topics.end(), name) != manifest_topics.end();
    const auto it = cluster.find(name);
    if (it == cluster.end()) {
      topics.push_back({{"topic", name}, {"exists", false}, {"in_manifest", in_manifest},
                        {"partitions", json::array()}});
      continue;
    }
    json partitions = json::array();
    std::int64_t messages = 0;
    bool messages_known = true;
    for (const auto& p : it->second.partitions) {
      json row = {{"partition", p.id}, {"leader", p.leader}, {"replicas", ids(p.replicas)},
                  {"isr", ids(p.isr)}, {"low", nullptr}, {"high", nullptr}};
      if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) row["error"] = rd_kafka_err2str(p.err);
      std::int64_t low = 0, high = 0;
      const rd_kafka_resp_err_t err =
          rd_kafka_query_watermark_offsets(rk, name.c_str(), p.id, &low, &high, kWatermarkTimeoutMs);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        row["low"] = low;
        row["high"] = high;
        messages += high - low;
      } else {
        row["error"] = rd_kafka_err2str(err);
        messages_known = false;
      }
      partitions.push_back(std::move(row));
    }
    topics.push_back({{"topic", name},
                      {"exists", true},
                      {"in_manifest", in_manifest},
                      {"internal", name.rfind("__", 0) == 0},
                      {"messages", messages_known ? json(messages) : json()},
                      {"messages_per_second_1m", rates.rate(name, std::chrono::seconds(60))},
                      {"messages_per_second_5m", rates.rate(name, std::chrono::seconds(300))},
                      {"rate_history", rates.history(name)},
                      {"partitions", std::move(partitions)}});
  }
  return {{"time_ms", nowMs()}, {"all", all}, {"topics", std::move(topics)}};
}

json groupsJson(rd_kafka_t* rk, const std::vector<OwnGroup>& own,
                const std::map<std::string, PartitionOffsets>& stored_offsets) {
  json out = {{"time_ms", nowMs()}, {"groups", json::array()}};
  ConsumerGroupList list;
  try {
    list = describeConsumerGroups(rk, kMetadataTimeout);
  } catch (const std::exception& e) {
    out["error"] = std::string("the cluster did not list its consumer groups: ") + e.what() +
                   " (the dev broker, librdkafka's mock cluster, does not implement every group "
                   "admin request; Apache Kafka does)";
  }
  out["errors"] = list.errors;
  if (!out.contains("error") && !list.errors.empty()) {
    std::string text;
    for (const auto& e : list.errors) text += (text.empty() ? "" : "; ") + e;
    out["error"] = "the cluster could not list (all) its consumer groups: " + text +
                   " (the dev broker, librdkafka's mock cluster, does not implement "
                   "ListConsumerGroups; Apache Kafka does). UltraCore's own groups are shown "
                   "with the offsets stored in PostgreSQL.";
  }
  // High watermarks for lag, one query per partition seen.
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> highs;
  const auto high = [&](const std::string& topic, std::int32_t partition) -> json {
    const auto key = std::make_pair(topic, partition);
    auto it = highs.find(key);
    if (it == highs.end()) {
      std::int64_t low = 0, hi = -1;
      if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &hi,
                                           kWatermarkTimeoutMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        hi = -1;
      }
      it = highs.emplace(key, hi).first;
    }
    return it->second >= 0 ? json(it->second) : json();
  };
  std::set<std::string> listed;
  const auto ownOf = [&](const std::string& group_id) -> const OwnGroup* {
    const auto it = std::find_if(own.begin(), own.end(), [&](const OwnGroup& g) { return g.group_id == group_id; });
    return it == own.end() ? nullptr : &*it;
  };
  const auto groupJson = [&](const ConsumerGroup& group) {
    const OwnGroup* mine = ownOf(group.group_id);
    json members = json::array();
    std::map<std::pair<std::string, std::int32_t>, std::string> owner;
    for (const GroupMember& m : group.members) {
      json assignment = json::array();
      for (const auto& [topic, partition] : m.assignment) {
        assignment.push_back({{"topic", topic}, {"partition", partition}});
        owner[{topic, partition}] = m.client_id + " (" + m.host + ")";
      }
      members.push_back({{"member_id", m.member_id}, {"client_id", m.client_id}, {"host", m.host},
                         {"group_instance_id", m.group_instance_id.empty() ? json() : json(m.group_instance_id)},
                         {"assignment", std::move(assignment)}});
    }
    // Every partition the group has an offset for (Kafka's, PostgreSQL's) or is assigned.
    std::set<std::pair<std::string, std::int32_t>> keys;
    for (const auto& [tp, offset] : group.committed) keys.insert(tp);
    for (const auto& [tp, member] : owner) keys.insert(tp);
    const PartitionOffsets* stored = nullptr;
    if (mine != nullptr) {
      if (const auto it = stored_offsets.find(mine->offsets_key); it != stored_offsets.end()) {
        stored = &it->second;
        for (const auto& [tp, offset] : it->second) keys.insert(tp);
      }
    }
    json partitions = json::array();
    json total_lag = 0;
    for (const auto& tp : keys) {
      const json h = high(tp.first, tp.second);
      json row = {{"topic", tp.first}, {"partition", tp.second}, {"high", h}};
      const auto committed = group.committed.find(tp);
      row["committed"] = committed != group.committed.end() ? json(committed->second) : json();
      row["lag"] = committed != group.committed.end() && !h.is_null()
                       ? json(std::max<std::int64_t>(0, h.get<std::int64_t>() - committed->second))
                       : json();
      if (const auto o = owner.find(tp); o != owner.end()) row["member"] = o->second;
      if (mine != nullptr) {
        const auto s = stored != nullptr ? stored->find(tp) : PartitionOffsets::const_iterator();
        const bool has = stored != nullptr && s != stored->end() && s->second >= 0;
        row["stored"] = has ? json(s->second) : json();
        row["stored_lag"] = has && !h.is_null() ? json(std::max<std::int64_t>(0, h.get<std::int64_t>() - s->second)) : json();
      }
      const json& lag = mine != nullptr ? row["stored_lag"] : row["lag"];
      if (lag.is_null() || total_lag.is_null()) {
        total_lag = nullptr;
      } else {
        total_lag = total_lag.get<std::int64_t>() + lag.get<std::int64_t>();
      }
      partitions.push_back(std::move(row));
    }
    json g = {{"group_id", group.group_id},
              {"state", group.state},
              {"simple", group.simple},
              {"assignor", group.assignor},
              {"coordinator", group.coordinator},
              {"ultracore", mine != nullptr},
              {"members", std::move(members)},
              {"partitions", std::move(partitions)},
              {"lag", total_lag}};
    if (mine != nullptr) {
      g["projection"] = mine->projection;
      g["offsets_key"] = mine->offsets_key;
    }
    if (!group.describe_error.empty()) g["describe_error"] = group.describe_error;
    if (!group.offsets_error.empty()) g["offsets_error"] = group.offsets_error;
    return g;
  };
  for (const ConsumerGroup& group : list.groups) {
    listed.insert(group.group_id);
    out["groups"].push_back(groupJson(group));
  }
  // UltraCore's groups the cluster did not list (it could not, or they have no members and no
  // commits yet): shown with their PostgreSQL offsets.
  for (const OwnGroup& mine : own) {
    if (listed.count(mine.group_id) != 0) continue;
    listed.insert(mine.group_id);
    ConsumerGroup group;
    group.group_id = mine.group_id;
    group.state = "unknown";
    group.describe_error = out.contains("error") ? "not listed (see error)" : "not listed by the cluster";
    out["groups"].push_back(groupJson(group));
  }
  return out;
}

}  // namespace ultracore::engine
