'use strict';
// @clsi/plugin-host: load CLSI runner plugins (shared objects speaking the C
// ABI of host-api/include/clsi/plugin_abi.h) into a Node process and run
// their hooks around a compile, off the event loop. See README.md.

const fs = require('node:fs');
const path = require('node:path');

const ADDON_NAME = 'clsi_plugin_host.node';

// Where the addon is: $CLSI_NODE_ADDON (the .node file, or a directory that
// holds it), else lib/ beside this file (an installed package), else the
// repository's build tree (../build/lib, after `cmake --build build`).
function addonCandidates() {
  const out = [];
  const env = process.env.CLSI_NODE_ADDON;
  if (env) {
    out.push(fs.existsSync(env) && fs.statSync(env).isDirectory() ? path.join(env, ADDON_NAME) : env);
    return out;
  }
  out.push(path.join(__dirname, 'lib', ADDON_NAME));
  out.push(path.join(__dirname, '..', 'build', 'lib', ADDON_NAME));
  return out;
}

let native;
function addon() {
  if (native) return native;
  const tried = [];
  for (const file of addonCandidates()) {
    if (!fs.existsSync(file)) {
      tried.push(`${file} (not found)`);
      continue;
    }
    native = require(file);
    return native;
  }
  const err = new Error(
    `@clsi/plugin-host: the native addon ${ADDON_NAME} was not found; tried ${tried.join(', ')}. ` +
      'Build it with `cmake -S . -B build -DCLSI_BUILD_NODE=ON && cmake --build build` ' +
      '(after `npm ci` in host-node/), or set CLSI_NODE_ADDON to its path.',
  );
  err.code = 'ERR_CLSI_ADDON_NOT_FOUND';
  throw err;
}

const PYTHON_INSTALL = 'python.install';
const LEVELS = ['debug', 'info', 'warning', 'error'];

function defaultLog(entry) {
  if (entry.level !== 'warning' && entry.level !== 'error') return;
  const where = entry.compileId ? ` [${entry.compileId}]` : '';
  process.stderr.write(`[clsi-plugin-host] ${entry.level} ${entry.plugin}${where}: ${entry.message}\n`);
}

// A callback of the user must not throw into the addon's dispatch: a throw is
// reported as a process warning and otherwise ignored.
function guarded(fn, what) {
  return (...args) => {
    try {
      fn(...args);
    } catch (err) {
      process.emitWarning(`@clsi/plugin-host: ${what} threw: ${err && err.stack ? err.stack : err}`, {
        type: 'ClsiPluginHostWarning',
      });
    }
  };
}

// Ids reach log lines and the build service's requests: a string (or a
// number, or an object with its own toString, such as a MongoDB ObjectId) of
// at most MAX_ID_LENGTH characters without control characters.
const MAX_ID_LENGTH = 1024;
function idString(value, what) {
  if (value === undefined || value === null) return '';
  let s;
  if (typeof value === 'string') s = value;
  else if (typeof value === 'number' || typeof value === 'bigint') s = String(value);
  else if (typeof value === 'object' && value.toString !== Object.prototype.toString) s = String(value);
  else throw new TypeError(`${what} must be a string`);
  if (s.length > MAX_ID_LENGTH) throw new TypeError(`${what} is longer than ${MAX_ID_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s)) {
    throw new TypeError(`${what} must not contain control characters or line breaks`);
  }
  return s;
}

function optionalFunction(fn, what) {
  if (fn === undefined || fn === null) return undefined;
  if (typeof fn !== 'function') throw new TypeError(`${what} must be a function`);
  return fn;
}

// Checked before anything starts, so that a bad signal cannot leave a
// compile started and never post-compiled.
function checkSignal(signal) {
  if (signal === undefined || signal === null) return undefined;
  if (
    typeof signal !== 'object' ||
    typeof signal.aborted !== 'boolean' ||
    typeof signal.addEventListener !== 'function' ||
    typeof signal.removeEventListener !== 'function'
  ) {
    throw new TypeError('signal must be an AbortSignal');
  }
  return signal;
}

function abortError(signal) {
  if (signal.reason instanceof Error) return signal.reason;
  const err = new Error('the compile was aborted before it started');
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  if (signal.reason !== undefined) err.cause = signal.reason;
  return err;
}

function envEntries(baseEnv) {
  if (baseEnv === null || typeof baseEnv !== 'object' || Array.isArray(baseEnv)) {
    throw new TypeError('baseEnv must be an object of variable names to values, like process.env');
  }
  const out = [];
  for (const [name, value] of Object.entries(baseEnv)) {
    if (value === undefined || value === null) continue;
    if (name === '' || name.includes('=') || name.includes('\0')) {
      throw new TypeError(`baseEnv: invalid variable name ${JSON.stringify(name)}`);
    }
    const v = String(value);
    if (v.includes('\0')) throw new TypeError(`baseEnv.${name} must not contain a NUL character`);
    out.push(`${name}=${v}`);
  }
  return out;
}

function timeLeft({ deadline, timeoutMs }) {
  let left;
  if (deadline !== undefined && deadline !== null) {
    const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
    if (!Number.isFinite(ms)) throw new TypeError('deadline must be a time in ms since the epoch or a Date');
    left = Math.max(0, ms - Date.now());
  }
  if (timeoutMs !== undefined && timeoutMs !== null) {
    const t = Number(timeoutMs);
    if (!Number.isFinite(t) || t < 0) throw new TypeError('timeoutMs must be a non-negative number');
    left = left === undefined ? t : Math.min(left, t);
  }
  return left;
}

class Compile {
  #native;
  #post;
  #detach;

  constructor(nativeCompile, result, detach) {
    this.#native = nativeCompile;
    this.#detach = detach;
    this.compileId = result.compileId;
    this.status = result.status;
    this.failedPlugin = result.failedPlugin;
    this.plugins = result.plugins;
    this.env = result.env;
    this.changes = result.changes;
    this.lines = result.lines;
  }

  postCompile(outcome) {
    // Whatever it is given, the post-compile hooks run (a bad outcome must not
    // leave the compile's leases held): values that are not numbers count as
    // "unknown" (exit status -1, duration 0).
    const o = outcome !== null && typeof outcome === 'object' ? outcome : {};
    const { exitCode = 0, timedOut = false, durationMs = 0 } = o;
    if (!this.#post) {
      if (this.#detach) this.#detach();
      this.#post = this.#native.postCompile({
        exitCode: Number.isFinite(Number(exitCode)) ? Number(exitCode) : -1,
        timedOut: Boolean(timedOut),
        durationMs: Number.isFinite(Number(durationMs)) ? Number(durationMs) : 0,
      });
    }
    return this.#post;
  }

  cancel() {
    this.#native.cancel();
  }
}

class PluginHost {
  #native;
  #closed = false;

  constructor(nativeHost) {
    if (!nativeHost) throw new TypeError('use PluginHost.load()');
    this.#native = nativeHost;
  }

  static async load(plugins, { log = defaultLog } = {}) {
    if (!Array.isArray(plugins)) throw new TypeError('PluginHost.load: plugins must be an array');
    optionalFunction(log, 'PluginHost.load: log');
    const specs = plugins.map((p, i) => {
      if (!p || typeof p.path !== 'string') throw new TypeError(`plugins[${i}].path must be a string`);
      if (p.config !== undefined && p.config !== null && typeof p.config !== 'string') {
        throw new TypeError(`plugins[${i}].config must be a path (string)`);
      }
      return { path: path.resolve(p.path), config: p.config ? path.resolve(p.config) : undefined, optional: !!p.optional };
    });
    const nativeHost = await addon().load(specs, log ? guarded(log, 'the log callback') : undefined);
    return new PluginHost(nativeHost);
  }

  get plugins() {
    return this.#native.plugins;
  }

  get skipped() {
    return this.#native.skipped;
  }

  async preCompile(opts = {}) {
    if (this.#closed) {
      const err = new Error('the plugin host is closed');
      err.code = 'ERR_CLSI_HOST_CLOSED';
      throw err;
    }
    const {
      projectId = '',
      userId = '',
      compileDir,
      permissions = [],
      baseEnv = process.env,
      compileId,
      onLine,
      signal,
    } = opts;
    // Every argument is checked before a hook starts: a compile that has
    // started always gets its post-compile.
    if (typeof compileDir !== 'string' || compileDir === '') throw new TypeError('compileDir must be a path');
    if (!Array.isArray(permissions) || !permissions.every((p) => typeof p === 'string')) {
      throw new TypeError('permissions must be an array of strings');
    }
    const lineFn = optionalFunction(onLine, 'onLine');
    const abortSignal = checkSignal(signal);
    const request = {
      projectId: idString(projectId, 'projectId'),
      userId: idString(userId, 'userId'),
      compileDir: path.resolve(compileDir),
      permissions: [...permissions],
      baseEnv: envEntries(baseEnv),
      compileId: compileId === undefined || compileId === null ? undefined : idString(compileId, 'compileId'),
      timeLeftMs: timeLeft(opts),
    };
    let st;
    try {
      st = fs.statSync(request.compileDir);
    } catch (err) {
      throw new Error(`the compile directory ${request.compileDir} cannot be used: ${err.message}`, { cause: err });
    }
    if (!st.isDirectory()) throw new Error(`the compile directory ${request.compileDir} is not a directory`);
    // Aborted already: nothing starts, as with fetch().
    if (abortSignal && abortSignal.aborted) throw abortError(abortSignal);
    const [nativeCompile, done] = this.#native.startCompile(request, lineFn ? guarded(lineFn, 'onLine') : undefined);
    let detach;
    if (abortSignal) {
      // A weak reference: a long-lived signal must not keep the compile alive
      // (its garbage collection is what post-compiles a forgotten compile).
      const ref = new WeakRef(nativeCompile);
      const onAbort = () => {
        const nc = ref.deref();
        if (nc) nc.cancel();
      };
      abortSignal.addEventListener('abort', onAbort, { once: true });
      detach = () => abortSignal.removeEventListener('abort', onAbort);
    }
    let result;
    try {
      result = await done;
    } catch (err) {
      // The host failed (not a plugin: those give status 'error'); whatever
      // ran still gets its post-compile.
      if (detach) detach();
      await nativeCompile.postCompile({ exitCode: -1 }).catch(() => {});
      throw err;
    }
    return new Compile(nativeCompile, result, detach);
  }

  async close({ force = false } = {}) {
    if (this.#closed) {
      const err = new Error('the plugin host is already closed');
      err.code = 'ERR_CLSI_HOST_CLOSED';
      throw err;
    }
    this.#closed = true;
    await this.#native.close(!!force);
  }
}

module.exports = {
  PluginHost,
  Compile,
  PYTHON_INSTALL,
  LEVELS,
  get abiVersion() {
    return addon().abiVersion;
  },
  addonPath() {
    return addonCandidates().find((f) => fs.existsSync(f));
  },
};
