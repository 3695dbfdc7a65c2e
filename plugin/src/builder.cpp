#include "builder.hpp"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "eviction.hpp"
#include "kernelspec.hpp"
#include "key.hpp"
#include "protocol.hpp"

namespace clsi::venv {

void set_install_deadline(const Config& config, BuildRequest& request) {
  request.deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(config.caps.install_timeout_s);
  request.deadline_reason =
      "caps.install_timeout_s (" + std::to_string(config.caps.install_timeout_s) + " s)";
}

std::string encode_failure(const std::string& reason,
                           const std::vector<RequirementProblem>& problems) {
  if (problems.empty() && (reason.empty() || reason.front() != '{')) return reason;
  nlohmann::json j = {{"reason", reason},
                      {"problems", nlohmann::json::parse(protocol::encode_problems(problems))}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

RememberedFailure decode_failure(const std::string& stored) {
  if (stored.empty() || stored.front() != '{') return {stored, {}};
  auto j = nlohmann::json::parse(stored, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("reason") || !j["reason"].is_string())
    return {stored, {}};
  RememberedFailure f;
  f.reason = j["reason"].get<std::string>();
  if (auto p = j.find("problems"); p != j.end())
    f.problems = protocol::decode_problems(
        p->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return f;
}

BuildOutcome build_locked(const Config& config, const Store& store, const ProcessRunner& runner,
                          const BuildRequest& request, const LineSink& log,
                          const std::function<bool()>& cancelled, const LineSink& detail,
                          const ResolveAhead& resolve_ahead) {
  BuildOutcome out;
  const std::string id = short_key(request.key);
  struct stat st {};
  if (store.is_complete(request.key)) {
    log(note("environment " + id +
             " in the store can no longer be used (its interpreter changed, or its record "
             "does not match); rebuilding it"));
  } else if (::lstat(store.env_dir(request.key).c_str(), &st) == 0) {
    log(note("removing an unfinished build of environment " + id +
             " left by an interrupted build"));
  }
  if (auto removed = store.remove_env(request.key); !removed) {
    out.failure = removed.error();
    return out;
  }
  log(note("building environment " + id + " (" + std::to_string(request.requirements.size()) +
           " requirement(s))"));
  Installer installer(config, store, runner, resolve_ahead);
  auto built = installer.build(request, log, detail);
  if (built.ok) {
    // Written by our code after pip, so a wheel cannot choose the kernel.
    if (auto k = write_kernelspec(store.env_dir(request.key), kernel_display_name(id)); !k) {
      (void)store.remove_env(request.key);
      built.ok = false;
      built.failure = k.error();
    } else if (auto w = store.write_record(built.record); !w) {
      (void)store.remove_env(request.key);
      built.ok = false;
      built.failure = "could not mark the environment complete: " + w.error();
    }
  }
  if (!built.ok) {
    out.failure = built.failure;
    out.summary = built.summary.empty() ? built.failure : built.summary;
    out.problems = std::move(built.problems);
    out.service_fault = built.service_fault || (cancelled && cancelled());
    // Only the requirements' own faults are remembered: a retry cannot help
    // those, and would help everything else. With their problems, so that
    // a compile that meets the memory annotates its lines again.
    if (!out.service_fault) {
      (void)store.remember_failure(request.key, encode_failure(out.summary, out.problems));
      store.append_event("failure", request.key);
    }
    if (detail && out.summary != out.failure) detail(note("why: " + out.failure));
    log(note("building environment " + id + " failed: " + out.summary));
    return out;
  }
  store.forget_failure(request.key);
  store.append_event("build", request.key, built.record.build_seconds);
  char secs[32];
  (void)std::snprintf(secs, sizeof secs, "%.1f", built.record.build_seconds);  // cut short at worst
  log(note("built environment " + id + " in " + secs + " s (" +
           std::to_string(built.record.installed.size()) + " package(s), " +
           human_size(built.record.size_bytes) + ")"));
  out.ok = true;
  out.record = std::move(built.record);

  return out;
}

}  // namespace clsi::venv
