// The operator's log, as JSON lines: one object per line, the same fields
// from the plugin (through the host's log callback) and from the build
// service (its stderr), so that one pipeline can parse both:
//
//   {"time": "2026-05-01T12:00:00.123Z", "level": "info", "source": "plugin",
//    "event": "hit", "compile_id": "...", "project_id": "...", "user_id": "...",
//    "key": "<64 hex>", "duration_s": 0.0004, "reason": null, "message": "..."}
//
// Every field is always present; one that does not apply is null. `event`
// and `reason` are short words from a fixed set (docs/deployment.md lists
// them), `message` is the text a person reads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "clsi/plugin_glue.hpp"

namespace clsi::venv::oplog {

enum class Level { kDebug, kInfo, kWarning, kError };

struct Entry {
  Level level = Level::kInfo;
  std::string_view source = "service";  // plugin | service | clsi-venvs
  std::string_view event;
  std::string_view compile_id, project_id, user_id, key;
  std::optional<double> duration_s;
  std::string_view reason;
  std::string_view message;
};

// The entry as one line of JSON, without a newline, stamped with the time now
// (UTC, milliseconds). Strings that are not UTF-8 are repaired, never thrown on.
std::string line(const Entry& entry);

const char* level_name(Level level);

// The host's level for ours (the host may tag or filter by it).
clsi_log_level host_level(Level level);

// The entry as the plugin logs it: source "plugin", and the compile's ids
// from `ctx` (none without one: a line of on_create).
std::string plugin_line(const CompileContext* ctx, Entry entry);

}  // namespace clsi::venv::oplog
