#include "oplog.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace clsi::venv::oplog {
namespace {

using json = nlohmann::ordered_json;

json text_or_null(std::string_view s) {
  return s.empty() ? json(nullptr) : json(std::string(s));
}

std::string now_utc() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  // 24 characters for any real date; sized for every int the fields can hold.
  char buf[96];
  (void)std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "error";
}

clsi_log_level host_level(Level level) {
  switch (level) {
    case Level::kDebug:
      return CLSI_LOG_DEBUG;
    case Level::kInfo:
      return CLSI_LOG_INFO;
    case Level::kWarning:
      return CLSI_LOG_WARNING;
    case Level::kError:
      return CLSI_LOG_ERROR;
  }
  return CLSI_LOG_ERROR;
}

std::string plugin_line(const CompileContext* ctx, Entry e) {
  e.source = "plugin";
  if (ctx != nullptr) {
    e.compile_id = ctx->compile_id();
    e.project_id = ctx->project_id();
    e.user_id = ctx->user_id();
  }
  return line(e);
}

std::string line(const Entry& e) {
  // An ordered object: the fields come in the documented order.
  json j;
  j["time"] = now_utc();
  j["level"] = level_name(e.level);
  j["source"] = std::string(e.source);
  j["event"] = text_or_null(e.event);
  j["compile_id"] = text_or_null(e.compile_id);
  j["project_id"] = text_or_null(e.project_id);
  j["user_id"] = text_or_null(e.user_id);
  j["key"] = text_or_null(e.key);
  j["duration_s"] = e.duration_s ? json(*e.duration_s) : json(nullptr);
  j["reason"] = text_or_null(e.reason);
  j["message"] = text_or_null(e.message);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace clsi::venv::oplog
