// The build service, `clsi-venvs serve`: the store's only writer. It builds
// venvs when compile hosts ask over its UNIX socket (protocol.hpp), one build
// per key however many ask, at most service.max_parallel_builds at once,
// streams each build's progress to everyone waiting for it, and runs
// eviction. Compile hosts only read the store (docs/deployment.md).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "clsi/unique_fd.hpp"
#include "config.hpp"
#include "eviction.hpp"
#include "http_metrics.hpp"
#include "metrics.hpp"
#include "oplog.hpp"
#include "pip_spare.hpp"
#include "probe.hpp"
#include "process_runner.hpp"
#include "protocol.hpp"
#include "store.hpp"

namespace clsi::venv {

class BuildService {
 public:
  // `oplog`: the operator's log (the service's stderr or journal), one JSON
  // object per line (oplog.hpp).
  BuildService(Config config, ProcessRunner runner, LineSink oplog);
  ~BuildService();
  BuildService(const BuildService&) = delete;
  BuildService& operator=(const BuildService&) = delete;

  // Checks that the store is this user's alone, lays it out, and listens.
  // The error says what to fix.
  Expected<bool> start();
  // Serves until request_stop(); then stops running builds (their partial
  // venvs are removed), answers every waiting client and returns.
  void run();
  // Async-signal-unsafe: call from a normal thread (the signal thread).
  void request_stop();
  // Where GET /metrics is served ("" when it is not), once start() returned.
  [[nodiscard]] std::string metrics_address() const { return http_ ? http_->address() : ""; }

 private:
  struct Job;
  struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
  };

  [[nodiscard]] Expected<bool> restrict_leases() const;
  void accept_one();
  // `line`: the request, when the accept thread has read it already.
  void serve(protocol::LineChannel& ch, Peer peer, std::optional<std::string> line);
  void serve_build(protocol::LineChannel& ch, const protocol::BuildRequest& request,
                   const Peer& peer);
  void serve_used(protocol::LineChannel& ch, const protocol::UseReport& report);
  void worker();
  protocol::Event build(Job& job);
  // Eviction: after builds (eviction.gc_after_build, when over budget), and
  // every eviction.gc_interval_s.
  void gc_loop();
  void counted_gc(const GcReport& report);
  // Metrics: the HTTP endpoint, the textfile and metrics.json, on one thread.
  void metrics_loop();
  HttpResponse scrape();
  void publish_metrics();
  void op_log(oplog::Entry e) const;
  void op_log(oplog::Level level, std::string_view event, std::string_view message) const;
  // Eviction's lines, as the operator's log has them.
  [[nodiscard]] LineSink gc_log() const;
  [[nodiscard]] bool allowed(const Peer& peer) const;
  [[nodiscard]] bool stopping() const { return stopping_.load(); }

  const Config config_;
  const Store store_;
  const ProcessRunner runner_;
  const LineSink oplog_;
  InterpreterProbe probe_;
  UniqueFd store_lock_;  // <venvs_dir>/service.lock, held exclusively: one service per store
  UniqueFd listener_;
  UniqueFd wake_;  // eventfd: request_stop() wakes the accept loop

  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::mutex gc_mu_;  // one eviction at a time: after a build, or scheduled
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // queued or running, by key
  std::deque<std::shared_ptr<Job>> queue_;
  std::set<std::string> evict_keep_;  // built since the last pass after builds: kept by it
  int running_ = 0;
  int max_running_seen_ = 0;
  int connections_ = 0;
  std::set<int> live_;  // descriptors of connections being served
  std::map<uid_t, protocol::Clock::time_point> refusals_logged_;  // accept thread only
  // Connection threads, joined (never detached): each has ended, with its
  // thread-local state (OpenSSL's among it) freed, before run() returns.
  std::map<std::uint64_t, std::thread> connection_threads_;  // accept thread only
  std::uint64_t next_connection_ = 0;                        // accept thread only
  std::vector<std::uint64_t> ended_connections_;             // under mu_: to be joined
  void join_ended_connections();
  std::vector<std::thread> workers_;
  std::thread gc_thread_;
  std::unique_ptr<PipSpares> spares_;  // service.prestart_pip: pip started ahead of builds

  metrics::Registry metrics_;
  VenvSizeMemo sizes_;  // complete venvs, measured once
  std::optional<MetricsHttpServer> http_;
  std::thread metrics_thread_;
  std::int64_t started_at_ = 0;
  bool textfile_failing_ = false;  // metrics thread only: say so once, not every interval
};

}  // namespace clsi::venv
