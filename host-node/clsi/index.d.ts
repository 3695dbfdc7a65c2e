// TypeScript declarations for @clsi/plugin-host/clsi (the CLSI integration kit).
import type { LoadOptions, PluginHost, PluginSpec } from '..';

/** The callback of a CLSI command runner: LocalCommandRunner's and DockerRunner's shape. */
export type RunnerCallback = (
  err: (Error & { code?: number; timedout?: boolean; terminated?: boolean; pluginFailed?: string }) | null,
  output?: { stdout?: string; stderr?: string; exitCode?: number; pluginLines?: string[] },
) => void;

/** A CLSI command runner (LocalCommandRunner, DockerRunner). */
export interface CommandRunner {
  run(
    projectId: string,
    command: string[],
    directory: string,
    image: string | undefined,
    timeout: number,
    environment: Record<string, string>,
    compileGroup: string | undefined,
    callback: RunnerCallback,
  ): void;
  kill?(projectId: string, callback: (err?: Error | null) => void): void;
  [other: string]: unknown;
}

/** What the web tier tells the CLSI about one compile. */
export interface CompileFacts {
  userId?: string;
  projectId?: string;
  compileId?: string;
  /** The web tier's decision: owner and invited collaborators yes, anonymous and link sharing no. */
  allowPythonInstall?: boolean;
  /** Overrides allowPythonInstall: the permissions as they are. */
  permissions?: string[];
}

export interface KitOptions {
  plugins?: PluginSpec[];
  /** The CLSI's logger: logger.info(fields, message) and so on. */
  logger?: { info?: Function; warn?: Function; error?: Function; debug?: Function; log?: Function };
  log?: LoadOptions['log'];
  permissionsFor?(
    facts: CompileFacts,
    ctx: { projectId: string; directory: string; image?: string; compileGroup?: string },
  ): string[];
  /** The environment the command gets without plugins (prepends apply to it). */
  baseEnv?(environment: Record<string, string>, image: string | undefined): Record<string, string | undefined>;
  /** Put before each plugin line added to output.stdout. */
  linePrefix?: string;
}

export declare class ClsiPluginKit {
  static create(options?: KitOptions): Promise<ClsiPluginKit>;
  constructor(host: PluginHost, options?: KitOptions);
  readonly host: PluginHost;
  runWithCompile<T>(facts: CompileFacts, fn: () => T): T;
  setCompileFacts(directory: string, facts: CompileFacts): void;
  wrapRunner<R extends CommandRunner>(runner: R): R;
  cancel(projectId: string): boolean;
  close(options?: { force?: boolean }): Promise<void>;
}

export declare function outcomeOf(
  err: unknown,
  output: unknown,
): { exitCode: number; timedOut: boolean };
