// The python-venv plugin: one instance per host; hooks may run concurrently
// for different compiles. Everything hangs off the instance.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "clsi/plugin_glue.hpp"
#include "config.hpp"
#include "installer.hpp"
#include "lock.hpp"
#include "probe.hpp"
#include "process_runner.hpp"
#include "protocol.hpp"
#include "store.hpp"

namespace clsi::venv {

struct Seams {
  GetEnv getenv;
  ProcessRunner runner;  // what tests hand an in-process build service
  // Called at each step of pre-compile with its name; tests throw from it to
  // show that no step can fail a compile. Production: nothing.
  std::function<void(const char* step)> step;
  static Seams production();
};

class VenvPlugin {
 public:
  VenvPlugin(Config config, const HostServices& host, Seams seams);

  // The glue's factory: reads the configuration or throws with its message.
  static std::unique_ptr<VenvPlugin> create(const HostServices& host, const char* config_path);

  // Never fails the compile: anything that goes wrong, an exception of any
  // kind included, is a fallback with a line in output.log.
  clsi_status pre_compile(CompileContext& ctx, void** compile_ptr);
  clsi_status post_compile(CompileContext& ctx, void* compile_ptr,
                           const clsi_compile_result_v1& result);

  [[nodiscard]] const Config& config() const { return config_; }

 private:
  struct Want;
  clsi_status prepare_and_inject(CompileContext& ctx, void** compile_ptr);
  void step(const char* name) const {
    if (seams_.step) seams_.step(name);
  }
  std::optional<std::string> local_key(const Want& want, std::string& why_not) const;
  // `wait_until`: how long a conflicting lock is waited for (none by
  // default), unless `cancelled` says so first.
  std::optional<KeyLock> lease_if_usable(const Want& want, std::string& why_not,
                                         std::chrono::steady_clock::time_point wait_until = {},
                                         const std::function<bool()>& cancelled = {}) const;
  clsi_status ask_service(CompileContext& ctx, Want& want, void** compile_ptr);
  clsi_status inject(CompileContext& ctx, const Want& want, KeyLock held, bool hit,
                     void** compile_ptr);
  // The render runs on the base interpreter: says why in output.log, and
  // keeps `outcome` in *compile_ptr for post-compile to tell the service.
  clsi_status fall_back(CompileContext& ctx, void** compile_ptr, protocol::Outcome outcome,
                        const std::string& why, const std::string& key = {}) const;
  // Sends the service what pre-compile came to (*compile_ptr's outcome).
  void send_report(const CompileContext& ctx, void* compile_ptr) const noexcept;

  const Config config_;
  const HostServices& host_;
  const Seams seams_;
  Store store_;
  std::string host_jupyter_path_;  // JUPYTER_PATH of the host, read once at create
};

}  // namespace clsi::venv
