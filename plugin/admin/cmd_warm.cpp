// clsi-venvs warm: builds ahead of demand, through the build service like
// any compile, so whoever runs it leaves nothing in the store that the
// service does not own.
#include <chrono>
#include <iostream>

#include "admin_output.hpp"
#include "commands.hpp"
#include "key.hpp"
#include "requirements.hpp"
#include "requirements_file.hpp"
#include "service_client.hpp"

namespace clsi::venv::admin {

int warm(const Config& config, const Common& common, const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty()) throw NotDone(path + ": not a file name");
  auto file = read_requirements_file(dir, {name}, config.caps.max_requirements_bytes);
  if (!file) throw NotDone(file.error());
  if (!file->has_value()) throw NotDone(path + ": no such file");
  auto parsed =
      parse_requirements((*file)->text, {config.require_hashes, config.caps.max_requirement_lines});
  if (!parsed.refusals.empty()) {
    std::vector<std::string> lines;
    for (const auto& r : parsed.refusals)
      lines.push_back(format_refusal(name, r));
    throw NotDone(std::to_string(parsed.refusals.size()) + " line(s) of " + name +
                      " were refused, so nothing was built",
                  std::move(lines));
  }
  if (parsed.requirements.empty()) throw NotDone(name + " lists no packages; nothing to build");
  protocol::BuildRequest request;
  for (const auto& r : parsed.requirements)
    request.requirements.push_back(r.canonical);
  request.project_id = "clsi-venvs warm";
  request.origin = protocol::Origin::kWarm;
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(config.caps.install_timeout_s + 60);
  // The build's progress is for people: with --json it goes to stderr, so
  // that stdout holds only the answer.
  std::ostream& progress = common.json ? std::cerr : std::cout;
  auto answer = request_build(config, request, deadline,
                              [&](const std::string& line) { progress << line << std::flush; });
  if (answer.unreachable) {
    throw NotDone("the build service at " + config.service.socket +
                  " is unavailable: " + answer.reason);
  }
  if (answer.timed_out) throw NotDone("the build did not finish in time");
  if (!answer.ok) {
    throw NotDone("environment " + short_key(answer.key) + " could not be built: " + answer.reason);
  }
  Store store(config.venvs_dir);
  if (common.json) {
    print_json({{"command", "warm"},
                {"ok", true},
                {"key", answer.key},
                {"path", store.env_dir(answer.key)},
                {"requirements", request.requirements}});
  } else {
    say("environment " + short_key(answer.key) + " is ready: " + store.env_dir(answer.key));
  }
  return kExitDone;
}

}  // namespace clsi::venv::admin
