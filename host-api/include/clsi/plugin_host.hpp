// Host side: the per-compile rules every host shares (clsi-runner, the test
// kit's fake host, the Node addon), in one place:
//   - plugins load in order; a required one that fails to load or create
//     refuses the whole host, an optional one is skipped with a warning;
//   - pre-compile hooks run in plugin order, post-compile hooks in reverse,
//     and post-compile runs exactly once for every plugin whose pre-compile
//     did not return ERROR (also when the command never ran);
//   - the command's environment is the host's base environment with each
//     plugin's adjustments applied in order, each recorded with its plugin;
//     adjustments are legal only during that plugin's pre-compile;
//   - a plugin's output becomes whole lines (a partial line is completed at
//     the end of its hook), delivered to one sink in order;
//   - cancellation and the deadline are visible to the hooks (ABI 1.1).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clsi/plugin_abi.h"
#include "clsi/plugin_loader.hpp"

namespace clsi {

struct PluginSpec {
  std::string path;    // the shared object
  std::string config;  // its own configuration file; empty: none (NULL)
  bool optional = false;
};

// The operator's log: plugin name, level, compile id ("" outside a compile).
using OperatorLog = std::function<void(std::string_view plugin, clsi_log_level level,
                                       std::string_view compile_id, std::string_view message)>;

class PluginHost {
 public:
  // Loads and creates every plugin, in order. nullopt with `why` when a
  // required plugin fails; an optional one that fails is logged and left out.
  static std::unique_ptr<PluginHost> load(const std::vector<PluginSpec>& plugins, OperatorLog log,
                                          std::string& why);
  ~PluginHost();  // on_destroy in reverse order, then dlclose
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  [[nodiscard]] std::size_t size() const { return slots_.size(); }
  [[nodiscard]] const std::string& name(std::size_t i) const;
  // Names of the optional plugins that were skipped, with why.
  [[nodiscard]] const std::vector<std::string>& skipped() const { return skipped_; }

  struct Slot;

 private:
  friend class HostCompile;
  PluginHost() = default;
  OperatorLog log_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::string> skipped_;
  std::atomic<unsigned long long> next_compile_{0};
};

struct CompileRequest {
  std::string project_id;
  std::string user_id;
  std::string compile_dir;               // absolute
  std::vector<std::string> permissions;  // e.g. CLSI_PERMISSION_PYTHON_INSTALL
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::string compile_id;             // empty: the host makes one up
  std::vector<std::string> base_env;  // NAME=VALUE: what the command gets before plugins
};

struct EnvChange {
  std::string name;
  clsi_env_op op = CLSI_ENV_SET;
  std::string value;
  std::string plugin;
};

struct CompileOutcome {
  int exit_status = 0;
  bool timed_out = false;
  long long duration_ms = 0;
};

// One compile through every plugin of a host. Hooks run on the thread that
// calls pre_compile()/post_compile(); cancel() may come from any thread.
class HostCompile {
 public:
  // Receives each whole line (without its '\n') a plugin wrote, in order.
  using LineSink = std::function<void(std::string_view plugin, std::string_view line)>;

  HostCompile(PluginHost& host, CompileRequest request, LineSink lines);
  // Runs post-compile for whatever still needs it (exit status -1).
  ~HostCompile();
  HostCompile(const HostCompile&) = delete;
  HostCompile& operator=(const HostCompile&) = delete;

  struct PreResult {
    bool ok = true;                     // false: a plugin returned ERROR; do not run
    std::string failed_plugin;          // the one that did
    std::vector<clsi_status> statuses;  // per plugin, as far as they ran
  };
  // Every pre-compile hook, in order; stops at the first ERROR.
  PreResult pre_compile();
  // Post-compile, in reverse, for each plugin whose pre-compile is done and
  // did not fail, once. Safe to call while another thread is still inside
  // pre_compile(): the plugin whose hook runs is left alone. Returns the
  // statuses of the hooks it called, in call order (last plugin first).
  std::vector<clsi_status> post_compile(const CompileOutcome& outcome);

  // Hooks see it through cancelled_callback (and an elapsed deadline too).
  void cancel() { cancelled_ = true; }
  [[nodiscard]] bool cancelled() const;
  // The plugin whose pre-compile hook is running now, or "".
  [[nodiscard]] std::string running_plugin() const;

  // The command's environment: the base with every adjustment applied.
  [[nodiscard]] std::vector<std::string> environment() const;
  // What the plugins changed, in order, by whom.
  [[nodiscard]] std::vector<EnvChange> env_changes() const;
  [[nodiscard]] const std::string& compile_id() const { return request_.compile_id; }
  [[nodiscard]] const CompileRequest& request() const { return request_; }

  struct PluginState;

 private:
  friend struct HostCallbacks;
  clsi_compile_v1 facts(std::size_t i) const;
  std::optional<std::string> lookup(const std::string& name) const;  // env_mu_ held

  PluginHost& host_;
  CompileRequest request_;
  LineSink lines_;
  std::vector<const char*> permission_ptrs_;
  std::atomic<bool> cancelled_{false};
  std::vector<std::unique_ptr<PluginState>> plugins_;
  mutable std::mutex env_mu_;
  std::vector<EnvChange> changes_;
  std::mutex post_mu_;
};

}  // namespace clsi
