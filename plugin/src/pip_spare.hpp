// A pip started ahead of the build that will need it. Importing pip is most
// of a resolve (0.35-0.4 s of the 0.45-0.6 s it took for a key whose
// distributions are all in the store); a spare has done it before a build
// asks.
//
// A spare is the base interpreter making a venv of its own in a private
// directory under tmp/ (`-m venv --system-site-packages --without-pip`, as a
// build makes its venv), then becoming that venv's interpreter running the
// resolve's shim (pip_resolve_shim.hpp) with pip imported, which says it is
// ready on its output and waits on stdin for the arguments of one resolve.
// It resolves as the build's own venv would: an empty venv of the same
// interpreter over the same system site-packages, isolated the same way
// (isolation.hpp). Each spare serves one resolve and goes, with its
// directory; nothing of it is shared between builds.
//
// At most one spare per interpreter. They are started on a thread of their
// own, so that they die with this process (PR_SET_PDEATHSIG is the spawning
// thread's) and a build never waits for one to start; a spare unused for
// kMaxIdle, or started for an interpreter that has changed since, is
// stopped, never used. One that ended by itself before it was used is told
// to the operator, and no other is started for that interpreter for as long.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "clsi/child_process.hpp"
#include "expected.hpp"
#include "probe.hpp"

namespace clsi::venv {

class PipSpares {
 public:
  // Longest a spare waits for a build before it is stopped.
  static constexpr std::chrono::minutes kMaxIdle{10};

  // Spares work in `tmp_dir`; the shim is told the store's `dists_dir`.
  // `oplog`: a line for the operator when a spare ended by itself.
  PipSpares(std::string tmp_dir, std::string dists_dir, LineSink oplog,
            std::chrono::milliseconds max_idle = kMaxIdle);
  ~PipSpares();  // stops every spare and the thread
  PipSpares(const PipSpares&) = delete;
  PipSpares& operator=(const PipSpares&) = delete;

  // Starts a spare for the interpreter `facts` names (on the spares' thread,
  // which calls `facts`; this returns at once), unless one is there or it
  // could not use one (no pip, or a pip without --dry-run).
  void prepare(std::function<Expected<InterpreterFacts>()> facts);

  // One resolve: pip's own arguments (`install ... --dry-run ...`) run by the
  // spare for `python`, streamed as run_streaming() does. nullopt when there
  // was none, or it ended before it could run pip (`note` says why, for the
  // operator): nothing ran, and the caller starts pip itself.
  std::optional<RunOutcome> run(const InterpreterFacts& python,
                                const std::vector<std::string>& pip_args, Deadline deadline,
                                const LineSink& on_line, const PollHook& poll_hook,
                                const LineSink& note);

  // Spares ready or starting, for tests and metrics.
  [[nodiscard]] std::size_t count() const;

 private:
  struct Spare;
  void keep();  // the spares' thread
  std::unique_ptr<Spare> start(const InterpreterFacts& python) const;

  const std::string tmp_dir_;
  const std::string dists_dir_;
  const LineSink oplog_;
  const std::chrono::milliseconds max_idle_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::function<Expected<InterpreterFacts>()>> wanted_;
  std::map<std::string, std::unique_ptr<Spare>> spares_;  // by the interpreter's real path
  std::map<std::string, std::chrono::steady_clock::time_point> failed_;  // none until then
  std::thread thread_;
};

}  // namespace clsi::venv
