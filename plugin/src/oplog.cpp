#include "oplog.hpp"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace clsi::venv::oplog {
namespace {

using json = nlohmann::ordered_json;

json text_or_null(std::string_view s) {
  return s.empty() ? json(nullptr) : json(std::string(s));
}

// By calendar arithmetic, not gmtime_r(): glibc's first gmtime_r() in a
// process reads /etc/localtime (seven system calls and a parse), which a
// hit in a fresh clsi-runner would pay for its one line.
std::string now_utc() {
  using namespace std::chrono;
  const auto now = floor<milliseconds>(system_clock::now());
  const auto day = floor<days>(now);
  const year_month_day date{day};
  const hh_mm_ss<milliseconds> time{now - day};
  // 24 characters for any real date; sized for every int the fields can hold.
  char buf[96];
  (void)std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(date.year()),
      static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
      static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
      static_cast<int>(time.seconds().count()), static_cast<int>(time.subseconds().count()));
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
