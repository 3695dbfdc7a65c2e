#include "venv_plugin.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <stdexcept>

#include "kernelspec.hpp"
#include "key.hpp"
#include "log_text.hpp"
#include "oplog.hpp"
#include "requirements_file.hpp"
#include "service_client.hpp"
#include "store_trust.hpp"
#include "venv_state.hpp"

namespace clsi::venv {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::Outcome;

// How long a compile told that its venv is ready waits for its lease.
constexpr auto kLeaseWait = std::chrono::seconds(5);

// Everything this plugin writes to output.log goes through here: its own
// words, the service's progress (pip's output among it), remembered reasons.
void say(const CompileContext& ctx, std::string_view text) {
  ctx.append(log_lines(text));
}

// What a compile holds between its two hooks: the key's shared lock, the
// lease that keeps eviction and rebuilds away while the render runs.
struct CompileState {
  std::string key;
  std::optional<KeyLock> lease;     // a venv was used: its lease, until post-compile
  Outcome outcome = Outcome::kHit;  // for the service's metrics
  std::string why;                  // a fallback's reason, for the operator's log
  // The report of the outcome, sent as pre-compile ended; its answer is read
  // in post-compile. None: it could not be sent then, post-compile sends it.
  std::optional<protocol::LineChannel> report;
};

// What the service is told of a compile (protocol "used").
protocol::UseReport report_of(const CompileContext& ctx, const CompileState& state) {
  protocol::UseReport report;
  report.key = state.lease ? state.key : std::string();
  report.outcome = state.outcome;
  report.compile_id = ctx.compile_id();
  report.project_id = ctx.project_id();
  report.user_id = ctx.user_id();
  return report;
}

// One line per compile on the operator's log: what pre-compile came to.
// Never throws: the compile's variables may be set already.
void log_outcome(const CompileContext& ctx, const void* compile_ptr,
                 Clock::time_point started) noexcept try {
  const auto* state = static_cast<const CompileState*>(compile_ptr);
  if (state == nullptr) return;  // nothing to do: no requirements file
  oplog::Level level = oplog::Level::kInfo;
  switch (state->outcome) {
    case Outcome::kServiceUnavailable:
    case Outcome::kServiceFault:
    case Outcome::kUnusable:
    case Outcome::kHostRefused:
      level = oplog::Level::kWarning;  // the compile service's problem, not the project's
      break;
    case Outcome::kPluginError:
      level = oplog::Level::kError;
      break;
    default:
      break;
  }
  oplog::Entry e;
  e.level = level;
  e.event = protocol::outcome_kind(state->outcome);
  e.key = state->key;
  e.duration_s = std::chrono::duration<double>(Clock::now() - started).count();
  e.reason = protocol::fallback_reason(state->outcome);
  e.message = state->why;
  ctx.log(oplog::host_level(level), oplog::plugin_line(&ctx, e));
} catch (...) {
  // out of memory: the compile goes on without its line
}

// A line of the operator's log about something other than a compile's
// outcome: a configuration warning, an untrusted venv, a lost report.
std::string event_line(const CompileContext* ctx, oplog::Level level, std::string_view event,
                       std::string_view key, const std::string& message) {
  oplog::Entry e;
  e.level = level;
  e.event = event;
  e.key = key;
  e.message = message;
  return oplog::plugin_line(ctx, e);
}

}  // namespace

// Everything a compile asks for, once the requirements are parsed and keyed.
struct VenvPlugin::Want {
  std::string file_name;  // e.g. requirements.txt
  std::string key;
  std::string id;  // short key, for messages
  std::vector<Requirement> requirements;
  Clock::time_point compile_deadline;  // when the render must start
};

// The environment is read only by create() and the constructor, i.e. from
// on_create, which the ABI never runs concurrently with this instance's hooks;
// the plugin never writes the environment (getenv races only with setenv).
Seams Seams::production() {
  return {[](const char* name) -> const char* {
            return std::getenv(name);  // NOLINT(concurrency-mt-unsafe): on_create only, above
          },
          default_process_runner(),
          {}};
}

VenvPlugin::VenvPlugin(Config config, const HostServices& host, Seams seams)
    : config_(std::move(config)), host_(host), seams_(std::move(seams)), store_(config_.venvs_dir) {
  // The compile's command inherits the host's environment (ABI 1.0 has no
  // read of it), so the host's JUPYTER_PATH is what the render would have had.
  if (const char* jp = seams_.getenv("JUPYTER_PATH")) host_jupyter_path_ = jp;
  if (config_.enabled && config_.builder != "auto") {
    host_.log(CLSI_LOG_WARNING,
              event_line(nullptr, oplog::Level::kWarning, "config", {},
                         config_.source +
                             ": python_venv.builder has no effect any more; builds run only in "
                             "the build service (clsi-venvs serve)"));
  }
}

std::unique_ptr<VenvPlugin> VenvPlugin::create(const HostServices& host, const char* config_path) {
  auto seams = Seams::production();
  auto config = load_config(config_path, seams.getenv);
  if (!config) throw std::runtime_error(config.error());
  return std::make_unique<VenvPlugin>(std::move(*config), host, std::move(seams));
}

// The compile goes on as it would without this plugin: QUARTO_PYTHON is left
// to the deployment, which is what "the base interpreter" means here.
clsi_status VenvPlugin::fall_back(CompileContext& ctx, void** compile_ptr, Outcome outcome,
                                  const std::string& why, const std::string& key) const {
  // Kept for post-compile, which tells the service (its metrics count it).
  std::unique_ptr<CompileState> before(static_cast<CompileState*>(*compile_ptr));
  *compile_ptr = std::make_unique<CompileState>(CompileState{key, {}, outcome, why, {}}).release();
  say(ctx, note(why));
  say(ctx, note("the render runs on the base interpreter, without the project's packages"));
  return CLSI_STATUS_FELL_BACK;
}

// QUARTO_PYTHON and JUPYTER_PATH go together: QUARTO_PYTHON alone runs only
// Quarto's kernel driver in the venv, while the kernel comes from whichever
// python3 kernelspec is first on the Jupyter path (docs/store.md).
clsi_status VenvPlugin::inject(CompileContext& ctx, const Want& want, KeyLock held, bool hit,
                               void** compile_ptr) {
  // Everything that can throw happens before the first variable is set, so
  // an exception never leaves the compile with half of them.
  const std::string venv = store_.env_dir(want.key);
  const std::string jupyter_path = jupyter_path_with(venv, host_jupyter_path_);
  const std::string python = venv + "/bin/python3";
  auto state = std::make_unique<CompileState>(
      CompileState{want.key, std::move(held), hit ? Outcome::kHit : Outcome::kReady, {}, {}});
  if (ctx.supports_env_adjust()) {
    // ABI 1.1: in front of whatever Jupyter path the command would have.
    const std::string data_dir = venv + "/share/jupyter";
    auto before = ctx.get_env("QUARTO_PYTHON");
    if (!ctx.set_env("QUARTO_PYTHON", python))
      return fall_back(ctx, compile_ptr, Outcome::kHostRefused,
                       "the host refused to set QUARTO_PYTHON");
    if (!ctx.adjust_env(CLSI_ENV_PREPEND, "JUPYTER_PATH", data_dir)) {
      (void)(before ? ctx.set_env("QUARTO_PYTHON", *before)  // neither, then
                    : ctx.adjust_env(CLSI_ENV_UNSET, "QUARTO_PYTHON"));
      return fall_back(ctx, compile_ptr, Outcome::kHostRefused,
                       "the host refused to prepend to JUPYTER_PATH");
    }
    *compile_ptr = state.release();
    return CLSI_STATUS_OK;
  }
  if (!ctx.set_env("JUPYTER_PATH", jupyter_path))
    return fall_back(ctx, compile_ptr, Outcome::kHostRefused,
                     "the host refused to set JUPYTER_PATH");
  if (!ctx.set_env("QUARTO_PYTHON", python)) {
    (void)ctx.set_env("JUPYTER_PATH", host_jupyter_path_);  // neither, then
    return fall_back(ctx, compile_ptr, Outcome::kHostRefused,
                     "the host refused to set QUARTO_PYTHON");
  }
  *compile_ptr = state.release();
  return CLSI_STATUS_OK;
}

clsi_status VenvPlugin::pre_compile(CompileContext& ctx, void** compile_ptr) {
  *compile_ptr = nullptr;
  if (!config_.enabled) return CLSI_STATUS_NOTHING_TO_DO;
  const auto started = Clock::now();
  std::string what;
  try {
    const clsi_status status = prepare_and_inject(ctx, compile_ptr);
    log_outcome(ctx, *compile_ptr, started);
    send_report(ctx, *compile_ptr);
    return status;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an unknown exception";
  }
  // No variable was set (inject() sets them last, after anything that can
  // throw), so the render runs as it would without the plugin.
  try {
    // The operator's line is the outcome's (an error), which says the same.
    const clsi_status status =
        fall_back(ctx, compile_ptr, Outcome::kPluginError,
                  "the plugin failed unexpectedly (" + what +
                      "); this is a problem of the compile service, not of your project");
    log_outcome(ctx, *compile_ptr, started);
    send_report(ctx, *compile_ptr);
    return status;
  } catch (...) {
    return CLSI_STATUS_FELL_BACK;  // not even a line could be written (out of memory)
  }
}

clsi_status VenvPlugin::prepare_and_inject(CompileContext& ctx, void** compile_ptr) {
  const auto start = Clock::now();
  step("read");

  // 1. The requirements file: untrusted, read carefully, parsed by allowlist.
  auto file = read_requirements_file(std::string(ctx.compile_dir()), config_.requirements_files,
                                     config_.caps.max_requirements_bytes);
  if (!file) {
    say(ctx, file.error());
    return fall_back(ctx, compile_ptr, Outcome::kRefused,
                     "not installing Python packages: the requirements file was refused");
  }
  if (!file->has_value()) return CLSI_STATUS_NOTHING_TO_DO;
  step("parse");
  Want want;
  want.file_name = (*file)->name;
  for (const auto& other : (*file)->ignored) {
    say(ctx, note("using ./" + want.file_name + "; ./" + other +
                  " is there too and is not read (the first of python_venv.requirements_files "
                  "that is present is used)"));
  }
  ParseOptions options;
  options.require_hashes = config_.require_hashes;
  options.max_requirement_lines = config_.caps.max_requirement_lines;
  options.max_packages = config_.caps.max_packages;
  auto parsed = parse_requirements((*file)->text, options);
  if (!parsed.refusals.empty()) {
    for (const auto& r : parsed.refusals)
      say(ctx, format_refusal(want.file_name, r));
    return fall_back(ctx, compile_ptr, Outcome::kRefused,
                     "not installing Python packages: " + std::to_string(parsed.refusals.size()) +
                         " line(s) of ./" + want.file_name +
                         " were refused; fix them to get the packages");
  }
  if (parsed.requirements.empty()) {
    say(ctx, note("./" + want.file_name + " lists no packages; using the base interpreter"));
    return CLSI_STATUS_NOTHING_TO_DO;
  }
  want.requirements = std::move(parsed.requirements);

  step("gate");
  // 2. Gating: the web tier decides who may install; default deny.
  if (!ctx.allow_python_install()) {
    return fall_back(ctx, compile_ptr, Outcome::kGated,
                     "not installing the packages in ./" + want.file_name +
                         ": this compile's user may not install Python packages (only the "
                         "project owner and invited collaborators may)");
  }

  const long long left_ms = ctx.time_left_ms();
  want.compile_deadline = left_ms < 0 ? Clock::time_point::max()
                                      : start + std::chrono::milliseconds(left_ms) -
                                            std::chrono::seconds(config_.render_reserve_s);

  step("key");
  // 3. A hit, from what the service left in the store: no process, no write.
  std::string why_not;
  if (auto key = local_key(want, why_not)) {
    want.key = *key;
    want.id = short_key(want.key);
    step("lease");
    if (auto lease = lease_if_usable(want, why_not)) {
      step("inject");
      say(ctx, note("reusing environment " + want.id + " for ./" + want.file_name));
      return inject(ctx, want, std::move(*lease), true, compile_ptr);
    }
  }
  step("service");
  return ask_service(ctx, want, compile_ptr);
}

// The key as the service would compute it, from the probe and key cache it
// keeps in the store; nullopt when it has not probed this interpreter yet.
std::optional<std::string> VenvPlugin::local_key(const Want& want, std::string& why_not) const {
  auto owner = store_owner(store_.root());
  if (!owner) {
    why_not = owner.error();
    return std::nullopt;
  }
  auto probe = InterpreterProbe::reader(store_.probes_dir(), *owner);
  auto python = probe.facts(config_.base_python);
  if (!python) {
    why_not = python.error();
    return std::nullopt;
  }
  return KeyCache(store_.keys_dir(), *owner)
      .key_for(key_material(want.requirements, *python, config_));
}

// A shared lease on want.key's venv when the store's owner marked it
// complete for exactly these requirements, nobody else can have changed the
// record or the venv, and its interpreter still is the base interpreter.
std::optional<KeyLock> VenvPlugin::lease_if_usable(const Want& want, std::string& why_not,
                                                   Clock::time_point wait_until,
                                                   const std::function<bool()>& cancelled) const {
  auto owner = store_owner(store_.root());
  if (!owner) {
    why_not = owner.error();
    return std::nullopt;
  }
  // One try by default; up to wait_until otherwise, opening the lock file
  // again when eviction replaced it meanwhile (whatever lease is taken, the
  // venv is checked under it, below).
  const std::string path = store_.lock_path(want.key);
  auto lease = KeyLock::open_for_lease(path);
  while (lease && !lease->lock_until(KeyLock::Mode::kShared, wait_until, cancelled)) {
    if (!lease->stale() || Clock::now() >= wait_until) {
      why_not =
          lease->stale() ? "it is not in the store (evicted since)" : "being built or removed";
      return std::nullopt;
    }
    lease = KeyLock::open_for_lease(path);
  }
  if (!lease) {
    why_not = "it is not in the store (not built, or evicted since)";
    return std::nullopt;
  }
  std::vector<std::string> asked;
  for (const auto& r : want.requirements)
    asked.push_back(r.canonical);
  auto check = check_venv(store_, *owner, want.key, asked);
  if (check.state == VenvState::kUntrusted) {
    host_.log(CLSI_LOG_WARNING, event_line(nullptr, oplog::Level::kWarning, "untrusted", want.key,
                                           "environment " + want.id + " in " + store_.root() +
                                               " is not used: " + check.why));
  }
  if (check.state != VenvState::kUsable) {
    why_not = check.why;
    return std::nullopt;
  }
  return std::move(*lease);
}

// Asks the build service for the venv and follows its build, within the
// compile's deadline. A build goes on in the service when the deadline
// passes; a later compile uses it.
clsi_status VenvPlugin::ask_service(CompileContext& ctx, Want& want, void** compile_ptr) {
  say(ctx, note("no environment for ./" + want.file_name + " yet; asking the build service"));
  protocol::BuildRequest request;
  for (const auto& r : want.requirements)
    request.requirements.push_back(r.canonical);
  request.project_id = std::string(ctx.project_id());
  request.user_id = std::string(ctx.user_id());
  request.compile_id = std::string(ctx.compile_id());
  auto answer = request_build(
      config_, request, want.compile_deadline, [&](const std::string& line) { say(ctx, line); },
      [&] { return ctx.cancelled(); });
  if (!answer.key.empty()) {
    want.key = answer.key;
    want.id = short_key(want.key);
  }
  // The operator's warnings for the service's problems are the outcome
  // lines of pre_compile (log_outcome), at level warning.
  if (answer.unreachable) {
    return fall_back(ctx, compile_ptr, Outcome::kServiceUnavailable,
                     "the build service is unavailable (" + answer.reason +
                         "); this is a problem of the compile service, not of ./" + want.file_name,
                     want.key);
  }
  if (answer.timed_out && Clock::now() < want.compile_deadline) {
    return fall_back(ctx, compile_ptr, Outcome::kCancelled,
                     "the compile was cancelled while the environment for ./" + want.file_name +
                         " was being prepared; the build goes on in the background",
                     want.key);
  }
  if (answer.timed_out) {
    return fall_back(ctx, compile_ptr, Outcome::kDeadline,
                     "the environment for ./" + want.file_name +
                         " is being prepared in the background and was not ready before "
                         "this compile's deadline; compile again shortly to use it",
                     want.key);
  }
  if (!answer.ok) {
    if (answer.cause == protocol::Cause::kService) {
      return fall_back(ctx, compile_ptr, Outcome::kServiceFault,
                       "the build service could not build environment " + want.id + " (" +
                           answer.reason +
                           "); this is a problem of the compile service, "
                           "not of ./" +
                           want.file_name,
                       want.key);
    }
    // pip's failure, on the user's own lines.
    for (const auto& problem : answer.problems)
      for (const auto& line : format_problem(want.file_name, want.requirements, problem))
        say(ctx, line);
    return fall_back(ctx, compile_ptr, Outcome::kBuildFailed,
                     "environment " + want.id + " could not be built: " + answer.reason, want.key);
  }
  // The service may hold the key's lock exclusively for a moment after the
  // build: a second job queued for the key checks the venv under it, and an
  // eviction pass that saw it unfinished looks again under it. The lease is
  // waited for a while, so that a compile told `ready` is not refused the
  // venv for that.
  step("ready");
  std::string why_not;
  if (auto lease =
          lease_if_usable(want, why_not, std::min(want.compile_deadline, Clock::now() + kLeaseWait),
                          [&] { return ctx.cancelled(); })) {
    say(ctx, note("environment " + want.id + " is ready"));
    return inject(ctx, want, std::move(*lease), false, compile_ptr);
  }
  return fall_back(ctx, compile_ptr, Outcome::kUnusable,
                   "environment " + want.id + " was built but cannot be used here: " + why_not,
                   want.key);
}

// What the compile came to, for the service's metrics, and for a venv its
// last use, for LRU eviction: the service stamps it; nothing is written here.
// Sent now, so that its round trip overlaps the render (0.15 ms of a hit's
// time in a fresh clsi-runner otherwise). Never throws: the compile's
// variables are set.
void VenvPlugin::send_report(const CompileContext& ctx, void* compile_ptr) const noexcept try {
  auto* state = static_cast<CompileState*>(compile_ptr);
  if (state != nullptr) state->report = send_outcome(config_, report_of(ctx, *state));
} catch (...) {
  // out of memory: post-compile reports it
}

clsi_status VenvPlugin::post_compile(CompileContext& ctx, void* compile_ptr,
                                     const clsi_compile_result_v1& /*result*/) {
  std::unique_ptr<CompileState> state(static_cast<CompileState*>(compile_ptr));
  if (!state) return CLSI_STATUS_NOTHING_TO_DO;
  if (state->lease) state->lease->unlock();
  // Not answered (a service that restarted meanwhile): sent again.
  std::string why = state->report ? answer_of_outcome(config_, *state->report) : "not sent";
  if (!why.empty()) why = report_outcome(config_, report_of(ctx, *state));
  if (!why.empty()) {
    ctx.log(CLSI_LOG_INFO,
            event_line(&ctx, oplog::Level::kInfo, "report_failed", state->key,
                       "could not tell the build service what this compile came to (" +
                           std::string(protocol::outcome_kind(state->outcome)) + "): " + why));
  }
  return state->lease ? CLSI_STATUS_OK : CLSI_STATUS_NOTHING_TO_DO;  // no venv: nothing released
}

}  // namespace clsi::venv
