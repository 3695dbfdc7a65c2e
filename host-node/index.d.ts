// TypeScript declarations for @clsi/plugin-host (index.js).

/// <reference types="node" />

/** One plugin to load: a shared object speaking clsi/plugin_abi.h (ABI 1.x). */
export interface PluginSpec {
  /** Path of the shared object (resolved against the working directory). */
  path: string;
  /** The plugin's own configuration file (e.g. plugin.yaml); none: the plugin's defaults. */
  config?: string;
  /** An optional plugin that fails to load or create is skipped with a warning. Default false. */
  optional?: boolean;
}

export type LogLevel = 'debug' | 'info' | 'warning' | 'error';

/** A line of the operator's log (not the user's output.log). */
export interface LogEntry {
  level: LogLevel;
  /** The plugin's name (its path while it is being loaded). */
  plugin: string;
  /** The compile's id, '' outside a compile. */
  compileId: string;
  message: string;
}

export interface LoadOptions {
  /**
   * The operator's log; called on the event loop, in order. Default: warnings
   * and errors to stderr. A throw is turned into a process warning.
   */
  log?: ((entry: LogEntry) => void) | null;
}

/**
 * Every option is checked before any hook starts: a TypeError (or, for a
 * compile directory that is missing or not a directory, an Error) means no
 * hook ran and there is nothing to post-compile.
 */
export interface PreCompileOptions {
  /** At most 1024 characters, no control characters or line breaks (numbers and objects with their own toString are taken as strings). */
  projectId?: string;
  /** As projectId. */
  userId?: string;
  /** The compile directory (made absolute). */
  compileDir: string;
  /**
   * What the web tier granted this user for this compile, e.g. ['python.install']
   * (PYTHON_INSTALL). Default: none (default deny).
   */
  permissions?: string[];
  /** The compile's deadline, in ms since the epoch (Date.now()) or a Date. */
  deadline?: number | Date;
  /** The time the compile may take from now, in ms; with deadline, the earlier wins. */
  timeoutMs?: number;
  /** The environment the command would get without plugins. Default: process.env. */
  baseEnv?: Record<string, string | undefined>;
  /** The compile's id in log lines (as projectId); not checked for uniqueness. Default: made up, unique in this process. */
  compileId?: string;
  /** Each whole line a plugin writes for the user's output.log, as it is written. */
  onLine?: (plugin: string, line: string) => void;
  /**
   * Aborting it cancels the compile: waiting hooks return promptly (and fall back).
   * Aborted already: preCompile rejects with the signal's AbortError and no hook runs.
   */
  signal?: AbortSignal;
}

export type PluginStatus = 'ok' | 'nothing-to-do' | 'fell-back' | 'error';

export interface EnvChange {
  name: string;
  op: 'set' | 'prepend' | 'unset';
  /** null for 'unset'. */
  value: string | null;
  plugin: string;
}

export interface CompileOutcome {
  /** The command's exit status (128+N when killed by signal N; -1: it never ran). Default 0. */
  exitCode?: number;
  /** The deadline expired and the command was killed. Default false. */
  timedOut?: boolean;
  /** Wall-clock run time of the command. Default 0. */
  durationMs?: number;
}

export interface PostCompileResult {
  /** The lines the post-compile hooks wrote (also streamed through onLine). */
  lines: string[];
}

/** One compile between its two hooks. */
export declare class Compile {
  private constructor();
  readonly compileId: string;
  /** 'error': a plugin failed hard (failedPlugin); do not run the command, still call postCompile. */
  readonly status: 'ok' | 'error';
  readonly failedPlugin: string | null;
  /** Each plugin's pre-compile outcome, in order, as far as they ran. */
  readonly plugins: { name: string; status: PluginStatus }[];
  /** The command's full environment: baseEnv with the plugins' changes applied. */
  readonly env: Record<string, string>;
  /** What the plugins changed, in order, by whom. */
  readonly changes: EnvChange[];
  /** The lines the pre-compile hooks wrote, for the user's output.log. */
  readonly lines: string[];
  /**
   * The post-compile hooks (in reverse plugin order), off the event loop.
   * Once: later calls settle as the first did. A compile garbage-collected
   * without it gets it anyway (exit status -1). Takes anything: an outcome that
   * is not an object, and values that are not numbers, count as unknown
   * (exit status -1, duration 0); the hooks run all the same.
   */
  postCompile(outcome?: CompileOutcome | null): Promise<PostCompileResult>;
  /**
   * Marks the compile cancelled for the hooks still to run (the post-compile
   * hooks; thread-safe, idempotent). The pre-compile hooks have returned by
   * the time a Compile exists: to cancel those, abort PreCompileOptions.signal.
   */
  cancel(): void;
}

export declare class PluginHost {
  private constructor();
  /** Loads and creates every plugin in order, off the event loop. */
  static load(plugins: PluginSpec[], options?: LoadOptions): Promise<PluginHost>;
  /** Names of the loaded plugins, in order. */
  readonly plugins: string[];
  /** Why each optional plugin that failed was skipped. */
  readonly skipped: string[];
  /** Runs every plugin's pre-compile hook, in order, on a thread of its own. */
  preCompile(options: PreCompileOptions): Promise<Compile>;
  /**
   * Refuses new compiles, waits for every compile to finish (its postCompile
   * done, or garbage-collected), then unloads the plugins. force: cancels the
   * hooks that run and post-compiles (exit status -1) the compiles that wait.
   * Rejects when called again. While it waits it keeps the process alive: one
   * compile held and never post-compiled makes it wait for good (an idle
   * process may never collect it); use force on shutdown.
   */
  close(options?: { force?: boolean }): Promise<void>;
}

/** The permission that lets a compile's user have Python packages installed. */
export declare const PYTHON_INSTALL: 'python.install';
export declare const LEVELS: LogLevel[];
/** The plugin ABI the addon speaks, e.g. '1.1'. */
export declare const abiVersion: string;
/** Where the addon was found (undefined: nowhere). */
export declare function addonPath(): string | undefined;
