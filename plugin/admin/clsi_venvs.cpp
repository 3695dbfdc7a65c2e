// clsi-venvs: the store's build service and admin command. main() parses the
// command line (CLI11) and calls one command (cmd_*.cpp); `clsi-venvs
// --help` and `clsi-venvs help COMMAND` describe them.
//
//   clsi-venvs list   --config YAML [--json]
//   clsi-venvs gc     --config YAML [--max-total-mb N] [--unused-for DURATION] [--dry-run] [--json]
//   clsi-venvs rewarm --config YAML [--used-within DURATION] [--json]
//   clsi-venvs warm   --config YAML [--json] FILE
//   clsi-venvs remove --config YAML [--json] KEY
//   clsi-venvs stats  --config YAML [--json | --prometheus]
//   clsi-venvs serve  --config YAML [--json]    the build service: the store's only writer
//
// Exit status: 0 done, 1 something asked for did not happen, 2 the command
// line or the configuration is wrong (nothing was done).
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "admin_output.hpp"
#include "clsi/cli_text.hpp"
#include "commands.hpp"
#include "config.hpp"
#include "eviction.hpp"

using namespace clsi::venv;
using clsi::wrap_text;

namespace {

const char* const kFooter =
    "Exit status: 0 when what was asked for was done; 1 when something asked for did not\n"
    "happen (a venv gc should have removed and could not, a build that failed, a store that\n"
    "is not this user's), with a message on stderr saying what; 2 when the command line or\n"
    "the configuration is wrong (an unknown option, an option of another command, a missing\n"
    "or invalid value, a configuration file that cannot be read or is invalid): nothing was\n"
    "done. With --json, stdout holds one JSON document (serve: one object per log line, on\n"
    "stderr), also when the command did not do what was asked (then \"ok\" is false and\n"
    "\"error\" says why); usage errors are text on stderr.";

const char* const kConfigHelp =
    "the plugin configuration (plugin.yaml): the file the CLSI gives the plugin";
const char* const kVenvsDirHelp =
    "the store to use instead of python_venv.venvs_dir and PYTHON_VENVS_DIR";

// --max-total-mb: digits only (CLI11's own check would print its range).
std::string whole_number(std::string& value) {
  if (value.empty() || value.size() > 18 ||
      value.find_first_not_of("0123456789") != std::string::npos)
    return "takes a whole number of MB, not '" + value + "'";
  return {};
}

// In the list of commands, each one's first sentence, wrapped to fit;
// `help CMD` has the whole description.
class VenvsFormatter : public CLI::Formatter {
 public:
  std::string make_subcommand(const CLI::App* sub) const override {
    std::string text = sub->get_description();
    std::replace(text.begin(), text.end(), '\n', ' ');
    if (auto end = text.find(". "); end != std::string::npos) text.resize(end + 1);
    std::ostringstream out;
    CLI::detail::format_help(out, sub->get_name(), wrap_text(text), get_column_width());
    return out.str();
  }
};

// The command line of every command; only the one that was given is used.
struct CommandLine {
  admin::Common common;
  admin::GcArgs gc;
  admin::StatsArgs stats;
  admin::RewarmArgs rewarm;
  std::string file;  // warm
  std::string key;   // remove
  std::string help_topic;
};

CLI::App* add_command(CLI::App& app, CommandLine& cl, const std::string& name,
                      const std::string& description, const std::string& json_help) {
  CLI::App* sub = app.add_subcommand(name, wrap_text(description, 96));
  sub->set_help_flag("-h,--help", "print this help and exit");
  sub->add_option("--config", cl.common.config, wrap_text(kConfigHelp))
      ->type_name("YAML")
      ->required();
  sub->add_option("--venvs-dir", cl.common.venvs_dir, wrap_text(kVenvsDirHelp))->type_name("DIR");
  sub->add_flag("--json", cl.common.json, wrap_text(json_help));
  sub->footer(kFooter);
  return sub;
}

// What is wrong with the command line. An argument no command takes, or an
// option of another command, is named first: CLI11 would report a missing
// --config before it, and not say whose option it is.
std::string usage_message(const CLI::App& app, const CLI::ParseError& e) {
  const std::vector<std::string> extras = app.remaining(true);
  if (extras.empty()) return e.what();
  const auto selected = app.get_subcommands();
  const CLI::App* given = selected.empty() ? &app : selected.front();
  std::string message;
  for (const auto& arg : extras) {
    message += message.empty() ? "" : "; ";
    std::string owners;
    const std::string name = arg.substr(0, arg.find('='));
    if (name.size() > 1 && name[0] == '-') {
      for (const CLI::App* sub : app.get_subcommands({})) {
        if (sub != given && sub->get_option_no_throw(name) != nullptr)
          owners += (owners.empty() ? "" : ", ") + sub->get_name();
      }
    }
    if (!owners.empty()) {
      message += name;
      message += " is an option of ";
      message += owners;
      message += ", not of ";
      message += given->get_name();
    } else if (name.size() > 1 && name[0] == '-') {
      message += "unknown option ";
      message += name;
    } else {
      message += "unexpected argument '";
      message += arg;
      message += "'";
    }
  }
  return message;
}

// "clsi-venvs help" and "clsi-venvs help COMMAND": the same text as --help.
// (App::help() would describe the help command itself, the one selected.)
void print_help(const CLI::App& app, const std::string& topic) {
  if (topic.empty()) {
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
  } else {
    const CLI::App* sub = app.get_subcommand(topic);
    std::cout << sub->get_formatter()->make_help(sub, app.get_name() + " " + topic,
                                                 CLI::AppFormatMode::Normal);
  }
  std::cout << std::flush;
}

// The configuration, with --venvs-dir applied; exits 2 with the reason when
// it cannot be had.
int run(const std::string& command, const CommandLine& cl) {
  auto config = load_config(cl.common.config.c_str(), [](const char* n) -> const char* {
    return std::getenv(n);  // NOLINT(concurrency-mt-unsafe): no thread has started yet
  });
  if (!config) {
    (void)std::fprintf(stderr, "clsi-venvs %s: %s\n", command.c_str(), config.error().c_str());
    if (cl.common.json) admin::print_json(admin::error_json(command, config.error()));
    return admin::kExitUsage;
  }
  if (!cl.common.venvs_dir.empty()) {
    if (cl.common.venvs_dir.front() != '/') {
      const std::string why =
          "--venvs-dir takes an absolute path, not '" + cl.common.venvs_dir + "'";
      (void)std::fprintf(stderr, "clsi-venvs %s: %s\n", command.c_str(), why.c_str());
      return admin::kExitUsage;
    }
    config->venvs_dir = cl.common.venvs_dir;
  }
  try {
    if (command == "list") return admin::list(*config, cl.common);
    if (command == "gc") return admin::gc(*config, cl.common, cl.gc);
    if (command == "warm") return admin::warm(*config, cl.common, cl.file);
    if (command == "remove") return admin::remove(*config, cl.common, cl.key);
    if (command == "stats") return admin::stats(*config, cl.common, cl.stats);
    if (command == "serve") return admin::serve(*config, cl.common);
    if (command == "rewarm") return admin::rewarm(*config, cl.common, cl.rewarm);
  } catch (const std::exception& e) {
    std::vector<std::string> details;
    if (const auto* nd = dynamic_cast<const admin::NotDone*>(&e)) details = nd->details;
    for (const auto& line : details)
      std::cerr << line << '\n';
    std::cerr << "clsi-venvs " << command << ": " << e.what() << '\n' << std::flush;
    if (cl.common.json) {
      auto j = admin::error_json(command, e.what());
      if (!details.empty()) j["details"] = details;
      admin::print_json(j);
    }
    return admin::kExitNotDone;
  }
  return admin::kExitUsage;  // not reached: CLI11 took only the commands above
}

// The command line, parsed, and the command it names, run.
int parse_and_run(int argc, char** argv) {
  CommandLine cl;
  CLI::App app(wrap_text("The build service of the python-venv plugin's venv store (serve) and "
                         "the store's admin command. The same --config file as the CLSI's.",
                         96),
               "clsi-venvs");
  app.formatter(std::make_shared<VenvsFormatter>());
  app.get_formatter()->column_width(30);
  app.set_help_flag("-h,--help", "print this help and exit");
  app.set_version_flag("--version", "clsi-venvs " CLSI_VERSION, "print the version and exit");
  app.require_subcommand(1);
  app.footer(std::string("Run 'clsi-venvs help COMMAND' or 'clsi-venvs COMMAND --help' for a "
                         "command's options.\n\n") +
             kFooter);

  add_command(app, cl, "list",
              "What the store holds: each venv's key, state (complete, building, unfinished), "
              "size, last use, build time and requirements, most recently used first.",
              "print a JSON array of the venvs (key, state, size_bytes, last_used, built_at, "
              "build_seconds, requirements, installed, path)");

  CLI::App* gc = add_command(
      app, cl, "gc",
      "Evicts venvs down to the budget (eviction.max_total_mb, the whole store), least "
      "recently used first, as the service does; never one a compile is using or one being "
      "built. Also removes leftovers of interrupted builds and stale temporary files. Runs "
      "only as the store's owner (but --dry-run).",
      "print the report as a JSON object (ok, dry_run, budget_bytes, total_before_bytes, "
      "total_after_bytes, freed_bytes, within_budget, removed, failed, error, lines)");
  gc->add_option("--max-total-mb", cl.gc.max_total_mb,
                 wrap_text("the budget in MB for this run, instead of eviction.max_total_mb"))
      ->type_name("N")
      ->check(CLI::Validator(whole_number, ""));
  // A duration: 30d, 12h, 90m, 45s (eviction.hpp's parse_duration).
  const auto duration = [](const std::string& v) {
    auto d = parse_duration(v);
    return d ? std::string() : d.error();
  };
  gc->add_option("--unused-for", cl.gc.unused_for,
                 wrap_text("also evict every venv not used for this long (30d, 12h, 90m), "
                           "instead of eviction.unused_for_s"))
      ->type_name("DURATION")
      ->check(duration);
  gc->add_flag("--dry-run", cl.gc.dry_run,
               wrap_text("only say what would be removed; change nothing (any user who can "
                         "read the store)"));

  CLI::App* warm = add_command(
      app, cl, "warm",
      "Builds the venv of a requirements file ahead of demand, through the build service, "
      "like a compile (runs as any user the service allows); the build's progress is shown.",
      "print the answer as a JSON object (ok, key, path, requirements); the build's "
      "progress goes to stderr");
  warm->add_option("FILE", cl.file, wrap_text("the requirements file (requirements.txt syntax)"))
      ->type_name("")
      ->required();

  CLI::App* remove = add_command(
      app, cl, "remove",
      "Removes one venv, given its key or a unique prefix of it; not one a compile is using "
      "or one being built. Runs only as the store's owner.",
      "print the answer as a JSON object (ok, removed)");
  remove->add_option("KEY", cl.key, wrap_text("the venv's key (64 hex digits) or a unique prefix"))
      ->type_name("")
      ->required();

  CLI::App* stats = add_command(
      app, cl, "stats",
      "Cache hits and misses, builds, failures, fallbacks, evictions, build times and disk "
      "use: the build service's counters (metrics.json) and the whole store as it is now; "
      "only reads the store. A store it cannot read is an error.",
      "print one JSON object: the service's counters (hits, misses, builds, evictions, ...) "
      "and the store's usage (store_bytes, venvs, ...)");
  auto* prometheus = stats->add_flag("--prometheus", cl.stats.prometheus,
                                     wrap_text("print the Prometheus text format, for a node "
                                               "exporter's textfile collector"));
  prometheus->excludes(stats->get_option("--json"));

  add_command(app, cl, "serve",
              "The build service: listens on service.socket, builds venvs for the compile hosts, "
              "evicts; the only writer of the store, running as its owner. Runs until SIGTERM, "
              "SIGINT or SIGHUP, which stop and remove running builds; exits 0 then.",
              "write the service's log (stderr) as JSON lines: one object per line with time, "
              "level, source and message");

  CLI::App* rewarm = add_command(
      app, cl, "rewarm",
      "After a base-image upgrade (which changes every key): asks the build service, ahead of "
      "the users, for every requirement set whose venv was used within --used-within, for "
      "the interpreter and pip it has now; what is current is answered at once. Runs as any "
      "user the service allows; exits 1 when a set could not be built.",
      "print one JSON object once every set is answered (ok, used_within_s, lines: one "
      "per requirement set)");
  rewarm
      ->add_option("--used-within", cl.rewarm.used_within,
                   wrap_text("the window of last use (default 7d)"))
      ->type_name("DURATION")
      ->check(duration);

  CLI::App* help = app.add_subcommand("help", "Describes clsi-venvs or one of its commands.");
  help->set_help_flag("-h,--help", "print this help and exit");
  help->add_option("COMMAND", cl.help_topic, "the command to describe")
      ->check(CLI::IsMember({"list", "gc", "warm", "remove", "stats", "serve", "rewarm", "help"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version: on stdout
    std::string where = "clsi-venvs";
    for (const auto* sub : app.get_subcommands())
      where += " " + sub->get_name();
    (void)std::fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", where.c_str(),
                       usage_message(app, e).c_str(), where.c_str());
    return admin::kExitUsage;
  }
  CLI::App* given = app.get_subcommands().front();
  if (given == help) {
    print_help(app, cl.help_topic);
    return admin::kExitDone;
  }
  return run(given->get_name(), cl);
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(022);  // whatever this command creates, compile hosts can read
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& e) {  // the commands' own are caught in run()
    (void)std::fprintf(stderr, "clsi-venvs: %s\n", e.what());
    return admin::kExitNotDone;
  }
}
