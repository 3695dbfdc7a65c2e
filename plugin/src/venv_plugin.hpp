// The python-venv plugin: one instance per host; hooks may run concurrently
// for different compiles. Everything hangs off the instance.
#pragma once

#include <memory>

#include "clsi/plugin_glue.hpp"
#include "config.hpp"
#include "installer.hpp"
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

 private:
  const Config config_;
  const HostServices& host_;
  Store store_;
  InterpreterProbe probe_;
  Installer installer_;
};

}  // namespace clsi::venv
