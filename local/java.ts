// Finds the Java runtime DynamoDB Local needs (17 or newer) and says exactly what to do when it is missing.
import { execFile } from 'node:child_process';

export const MINIMUM_JAVA_MAJOR = 17;

export interface JavaRuntime {
  /** What to spawn: `java`, found on PATH. */
  readonly command: string;
  readonly majorVersion: number;
  /** The quoted version from `java -version`, e.g. `17.0.15`. */
  readonly version: string;
}

export class JavaNotFoundError extends Error {
  override readonly name = 'JavaNotFoundError';
}

const INSTALL_HINT =
  'Install a Java runtime 17 or newer and put its `java` on PATH, e.g. `sudo apt-get install openjdk-17-jre-headless` ' +
  '(Debian/Ubuntu), `sudo dnf install java-17-openjdk-headless` (Fedora/RHEL), `brew install openjdk@17` (macOS), ' +
  'or a Temurin build from https://adoptium.net/. Check with `java -version`.';

/** Parses the major version from `java -version` output: `1.8.0_391` is 8, `17.0.15` is 17, `21` is 21. */
export function parseJavaVersion(output: string): { version: string; majorVersion: number } | undefined {
  const match = /version "([^"]+)"/.exec(output);
  const version = match?.[1];
  if (version === undefined) return undefined;
  const parts = version.split(/[.+_-]/);
  const first = Number.parseInt(parts[0] ?? '', 10);
  const majorVersion = first === 1 ? Number.parseInt(parts[1] ?? '', 10) : first;
  return Number.isNaN(majorVersion) ? undefined : { version, majorVersion };
}

/** Resolves `java` on PATH and checks its version; throws JavaNotFoundError with an actionable message. */
export async function detectJava(
  what = 'DynamoDB Local',
  minimum: number = MINIMUM_JAVA_MAJOR,
  command = 'java',
): Promise<JavaRuntime> {
  const output = await new Promise<string>((resolve, reject) => {
    execFile(command, ['-version'], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        reject(
          new JavaNotFoundError(
            code === 'ENOENT'
              ? `${what} needs Java ${minimum} or newer, but \`${command}\` was not found on PATH. ${INSTALL_HINT}`
              : `${what} needs Java ${minimum} or newer, but \`${command} -version\` failed: ${err.message}. ${INSTALL_HINT}`,
          ),
        );
        return;
      }
      // `java -version` writes to stderr; some builds use stdout.
      resolve(`${stderr}\n${stdout}`);
    });
  });
  const parsed = parseJavaVersion(output);
  if (parsed === undefined) {
    throw new JavaNotFoundError(
      `${what} needs Java ${minimum} or newer, but the version of \`${command}\` could not be read from ` +
        `\`${command} -version\`: ${output.trim().split('\n')[0] ?? ''}. ${INSTALL_HINT}`,
    );
  }
  if (parsed.majorVersion < minimum) {
    throw new JavaNotFoundError(
      `${what} needs Java ${minimum} or newer, but \`${command}\` on PATH is Java ${parsed.majorVersion} ` +
        `(${parsed.version}). ${INSTALL_HINT}`,
    );
  }
  return { command, ...parsed };
}
