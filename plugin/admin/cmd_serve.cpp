// clsi-venvs serve: the build service, the store's only writer, until
// SIGTERM, SIGINT or SIGHUP. Its log goes to stderr: lines of text, or with
// --json one JSON object per line, in the operator log's shape (oplog.hpp).
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "admin_output.hpp"
#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "commands.hpp"
#include "oplog.hpp"
#include "service.hpp"

namespace clsi::venv::admin {
namespace {

// The service's log, from any of its threads, one whole line at a time.
class ServiceLog {
 public:
  explicit ServiceLog(bool json) : json_(json) {}
  void line(std::string_view level, std::string_view message) {
    std::string out;
    if (json_) {
      oplog::Entry e;
      e.level = level == "error"     ? oplog::Level::kError
                : level == "warning" ? oplog::Level::kWarning
                                     : oplog::Level::kInfo;
      e.source = "service";
      e.message = message;
      out = oplog::line(e);
    } else {
      out = "clsi-venvs serve: ";
      out += message;
    }
    out += '\n';
    std::lock_guard lock(mu_);
    std::cerr << out << std::flush;
  }
  // The service's own lines are JSON objects already (oplog.hpp: time,
  // level, source, event, compile_id, project_id, user_id, key, duration_s,
  // reason, message): as they are with --json; as "[level: ]message" without.
  void service_line(std::string_view message) {
    auto j = Json::parse(message, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return line("info", message);
    if (json_) {
      std::string out(message);
      out += '\n';
      std::lock_guard lock(mu_);
      std::cerr << out << std::flush;
      return;
    }
    const std::string level = j.value("level", "info");
    const auto m = j.find("message");
    std::string text = m != j.end() && m->is_string() ? m->get<std::string>() : std::string();
    if (level != "info" && level != "debug") text = level + ": " + text;
    line(level, text);
  }

 private:
  bool json_;
  std::mutex mu_;
};

}  // namespace

int serve(const Config& config, const Common& common) {
  ServiceLog log(common.json);
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGTERM, SIGINT, SIGHUP})
    sigaddset(&stop, sig);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts: all inherit it
  (void)::signal(SIGPIPE, SIG_IGN);  // fails only for a signal number that does not exist
  // The signal thread waits for a stop signal (blocked, so it is read from a
  // descriptor) and for the service to have returned, whichever comes first:
  // nothing has to be sent to the thread to end its wait.
  clsi::UniqueFd stop_signals(::signalfd(-1, &stop, SFD_CLOEXEC));
  if (!stop_signals) throw NotDone("the service did not start: signalfd: " + errno_text(errno));
  clsi::UniqueFd returned(::eventfd(0, EFD_CLOEXEC));
  if (!returned) throw NotDone("the service did not start: eventfd: " + errno_text(errno));
  BuildService service(config, default_process_runner(),
                       [&log](std::string_view line) { log.service_line(line); });
  if (auto s = service.start(); !s) {
    if (common.json) log.line("error", "the service did not start: " + s.error());
    throw NotDone("the service did not start: " + s.error());
  }
  std::thread signals([&] {
    pollfd fds[2] = {{stop_signals.get(), POLLIN, 0}, {returned.get(), POLLIN, 0}};
    while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    service.request_stop();  // nothing more once the service has returned
  });
  service.run();
  std::uint64_t one = 1;
  (void)!::write(returned.get(), &one, sizeof one);  // the signal thread's wait ends
  signals.join();
  return kExitDone;
}

}  // namespace clsi::venv::admin
