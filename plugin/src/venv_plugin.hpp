// The python-venv plugin: one instance per host; hooks may run concurrently
// for different compiles. Everything hangs off the instance.
#pragma once

#include <memory>

#include "clsi/plugin_glue.hpp"
#include "config.hpp"
#include "installer.hpp"
#include "lock.hpp"
#include "probe.hpp"
#include "process_runner.hpp"
#include "store.hpp"

namespace clsi::venv {

struct Seams {
  GetEnv getenv;
  ProcessRunner runner;
  static Seams production();
};

class VenvPlugin {
 public:
  VenvPlugin(Config config, const HostServices& host, Seams seams);

  // The glue's factory: reads the configuration or throws with its message.
  static std::unique_ptr<VenvPlugin> create(const HostServices& host, const char* config_path);

  clsi_status pre_compile(CompileContext& ctx, void** compile_ptr);
  clsi_status post_compile(CompileContext& ctx, void* compile_ptr,
                           const clsi_compile_result_v1& result);

  [[nodiscard]] const Config& config() const { return config_; }
  // The clsi-venvs binary that builds in the background; "" when builds run
  // inside the compile (builder: inline, or no binary found).
  [[nodiscard]] const std::string& builder_path() const { return builder_path_; }

 private:
  struct Want;
  clsi_status build_or_wait(CompileContext& ctx, const Want& want, KeyLock lock,
                            void** compile_ptr);
  bool launch_builder(CompileContext& ctx, const Want& want, KeyLock& exclusive);
  clsi_status inject(CompileContext& ctx, const Want& want, KeyLock held, void** compile_ptr);
  clsi_status fall_back(CompileContext& ctx, const std::string& why) const;

  const Config config_;
  const HostServices& host_;
  const Seams seams_;
  Store store_;
  InterpreterProbe probe_;
  std::string builder_path_;
  std::string builder_note_;  // why builds run inline, said once per compile that builds
};

}  // namespace clsi::venv
