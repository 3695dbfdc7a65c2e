'use strict';
// The CLSI integration kit: wraps a CLSI command runner (LocalCommandRunner,
// DockerRunner, or anything with their `run` signature) so that every compile
// it runs goes through the runner plugins: pre-compile before the command,
// the plugins' environment into the command, post-compile after it, always.
// docs/clsi-integration.md says where it goes in the CLSI and why.
//
//   const { ClsiPluginKit } = require('@clsi/plugin-host/clsi')
//   const kit = await ClsiPluginKit.create({ plugins: [{ path, config }], logger })
//   const CommandRunner = kit.wrapRunner(require('./DockerRunner'))
//   ...
//   kit.runWithCompile({ userId, allowPythonInstall }, () => LatexRunner.runLatex(...))

const { AsyncLocalStorage } = require('node:async_hooks');
const util = require('node:util');

const { PluginHost, PYTHON_INSTALL } = require('..');

// How the plugins' log reaches a bunyan/pino/console-style logger.
function logTo(logger) {
  if (!logger) return undefined;
  return (e) => {
    const fields = { plugin: e.plugin, compileId: e.compileId || undefined };
    const fn =
      (e.level === 'error' && logger.error) ||
      (e.level === 'warning' && (logger.warn || logger.warning)) ||
      (e.level === 'info' && logger.info) ||
      (e.level === 'debug' && logger.debug) ||
      logger.log;
    if (typeof fn === 'function') fn.call(logger, fields, `runner plugin: ${e.message}`);
  };
}

// The exit status a CLSI runner's callback implies. LocalCommandRunner and
// DockerRunner report it as output.exitCode (newer) or err.code; a timeout
// as err.timedout, a kill as err.terminated.
function outcomeOf(err, output) {
  const timedOut = Boolean(err && (err.timedout || err.timedOut));
  let exitCode;
  if (output && Number.isInteger(output.exitCode)) exitCode = output.exitCode;
  else if (err && Number.isInteger(err.code)) exitCode = err.code;
  else if (err && Number.isInteger(err.exitCode)) exitCode = err.exitCode;
  else if (timedOut) exitCode = 124;
  else if (err && err.terminated) exitCode = 143;
  else exitCode = err ? 1 : 0;
  return { exitCode, timedOut };
}

class ClsiPluginKit {
  /**
   * options.plugins: [{ path, config, optional }] for PluginHost.load.
   * options.logger: the CLSI's logger (logger.info(fields, msg) style), or
   *   options.log: a PluginHost log callback.
   * options.permissionsFor(facts, ctx): the permissions of a compile; default:
   *   ['python.install'] when facts.allowPythonInstall, else none.
   * options.baseEnv(environment, image): the environment the command gets
   *   without plugins, which prepends apply to; default { ...process.env,
   *   ...environment } (what LocalCommandRunner gives the command). For
   *   DockerRunner pass the image's own environment instead of process.env.
   * options.linePrefix: put before each plugin line added to output.stdout
   *   (default '').
   */
  static async create(options = {}) {
    const host = await PluginHost.load(options.plugins || [], {
      log: options.log || logTo(options.logger) || undefined,
    });
    return new ClsiPluginKit(host, options);
  }

  constructor(host, options = {}) {
    this.host = host;
    this.options = options;
    this.als = new AsyncLocalStorage();
    this.byDirectory = new Map(); // directory -> facts, for callers that cannot use runWithCompile
    this.active = new Map(); // projectId (the runner's compile name) -> { compile?, abort }
  }

  /** Runs fn with the facts of one compile (userId, allowPythonInstall, permissions, compileId). */
  runWithCompile(facts, fn) {
    return this.als.run({ ...facts }, fn);
  }

  /** The same, keyed by the compile directory, until that directory's next run ends. */
  setCompileFacts(directory, facts) {
    this.byDirectory.set(directory, { ...facts });
  }

  factsFor(directory) {
    return this.als.getStore() || this.byDirectory.get(directory) || {};
  }

  permissionsFor(facts, ctx) {
    if (this.options.permissionsFor) return this.options.permissionsFor(facts, ctx);
    if (Array.isArray(facts.permissions)) return facts.permissions;
    return facts.allowPythonInstall === true ? [PYTHON_INSTALL] : [];
  }

  /**
   * A runner like `runner` (its other methods and properties pass through)
   * whose run() goes through the plugins, and whose kill() also cancels a
   * compile still in its pre-compile hooks.
   */
  wrapRunner(runner) {
    const kit = this;
    const wrapped = Object.create(runner);
    wrapped.run = function run(projectId, command, directory, image, timeout, environment, compileGroup, callback) {
      kit.run(runner, [projectId, command, directory, image, timeout, environment, compileGroup], callback);
    };
    if (typeof runner.kill === 'function') {
      wrapped.kill = function kill(projectId, callback) {
        kit.cancel(projectId);
        return runner.kill(projectId, callback);
      };
    }
    if (runner.promises) {
      wrapped.promises = Object.create(runner.promises);
      wrapped.promises.run = util.promisify(wrapped.run);
      if (wrapped.kill) wrapped.promises.kill = util.promisify(wrapped.kill);
    }
    return wrapped;
  }

  /** Cancels the compile of `projectId` (the runner's first argument). */
  cancel(projectId) {
    const a = this.active.get(projectId);
    if (!a) return false;
    a.killed = true;
    a.abort.abort();
    if (a.compile) a.compile.cancel();
    return true;
  }

  // The wrapped run: pre-compile, the command with the plugins' environment,
  // post-compile in every case, then the caller's callback, once.
  run(runner, args, callback) {
    const [projectId, , directory] = args;
    const facts = this.factsFor(directory);
    this.byDirectory.delete(directory);
    const entry = { abort: new AbortController(), killed: false };
    this.active.set(projectId, entry);
    let called = false;
    const done = (err, output) => {
      if (called) return;
      called = true;
      if (this.active.get(projectId) === entry) this.active.delete(projectId);
      callback(err, output);
    };
    this.#run(runner, args, facts, entry).then(
      ([err, output]) => done(err, output),
      (err) => done(err),
    );
  }

  async #run(runner, args, facts, entry) {
    const [projectId, command, directory, image, timeout, environment = {}, compileGroup] = args;
    const lines = [];
    const ctx = { projectId, directory, image, compileGroup };
    const baseEnv = this.options.baseEnv
      ? this.options.baseEnv(environment, image)
      : { ...process.env, ...environment };
    let compile;
    try {
      compile = await this.host.preCompile({
        projectId: facts.projectId || projectId,
        userId: facts.userId || '',
        compileId: facts.compileId,
        compileDir: directory,
        permissions: this.permissionsFor(facts, ctx),
        timeoutMs: Number.isFinite(timeout) ? timeout : undefined,
        baseEnv,
        signal: entry.abort.signal,
        onLine: (plugin, line) => lines.push(line),
      });
    } catch (err) {
      // The plugins never fail a compile: without them the command runs as it would.
      const log = logTo(this.options.logger) || this.options.log;
      if (log) log({ level: 'warning', plugin: 'clsi-kit', compileId: '', message: `pre-compile failed, running without plugins: ${err.message}` });
      return this.#call(runner, args, environment, []);
    }
    entry.compile = compile;
    const started = Date.now();
    let result = [null, undefined];
    try {
      if (entry.killed) {
        const err = new Error('terminated');
        err.terminated = true;
        result = [err, { stdout: '', stderr: '' }];
      } else if (compile.status === 'error') {
        const err = new Error(`the runner plugin ${compile.failedPlugin} failed; the compile did not run`);
        err.pluginFailed = compile.failedPlugin;
        err.pluginLines = compile.lines;
        result = [err, { stdout: this.#prefixed(lines), stderr: '' }];
      } else {
        result = await this.#call(runner, args, this.#commandEnv(environment, compile), lines);
      }
    } finally {
      const ran = compile.status !== 'error' && !entry.killed;
      const { exitCode, timedOut } = ran ? outcomeOf(result[0], result[1]) : { exitCode: -1, timedOut: false };
      const post = await compile.postCompile({ exitCode, timedOut, durationMs: Date.now() - started }).catch(() => ({ lines: [] }));
      // Lines written after the command (post-compile) go to the end.
      if (post.lines.length && result[1] && typeof result[1].stdout === 'string') {
        result[1].stdout += this.#prefixed(post.lines);
        result[1].pluginLines = [...(result[1].pluginLines || []), ...post.lines];
      }
    }
    return result;
  }

  // The command's environment as the runner takes it: what the CLSI asked
  // for, with every variable a plugin changed at its final value (or gone).
  #commandEnv(environment, compile) {
    const env = { ...environment };
    for (const name of new Set(compile.changes.map((c) => c.name))) {
      if (Object.prototype.hasOwnProperty.call(compile.env, name)) env[name] = compile.env[name];
      else delete env[name];
    }
    return env;
  }

  #prefixed(lines) {
    const p = this.options.linePrefix || '';
    return lines.map((l) => `${p}${l}\n`).join('');
  }

  #call(runner, args, env, lines) {
    const [projectId, command, directory, image, timeout, , compileGroup] = args;
    return new Promise((resolve) => {
      const cb = (err, output) => {
        if (lines.length) {
          output = output && typeof output === 'object' ? output : { stdout: '', stderr: '' };
          output.stdout = this.#prefixed(lines) + (output.stdout || '');
          output.pluginLines = lines.slice();
        }
        resolve([err || null, output]);
      };
      try {
        runner.run(projectId, command, directory, image, timeout, env, compileGroup, cb);
      } catch (err) {
        resolve([err, undefined]);
      }
    });
  }

  /** Waits for the compiles in flight, then unloads the plugins. */
  close(options) {
    return this.host.close(options);
  }
}

module.exports = { ClsiPluginKit, outcomeOf };
