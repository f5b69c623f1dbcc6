// Entry point of the S3 server's child process (spawned by server.ts): fauxqs holds request bodies in memory and
// writes files synchronously, so it runs here, off the parent's event loop. Talks to the parent over IPC.
import { type S3AppOptions, startS3App } from './app.ts';
import { type ChildMessage, CONFIG_ENV } from './server.ts';

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(message, undefined, {}, () => resolve());
  });
}

async function main(): Promise<void> {
  const raw = process.env[CONFIG_ENV];
  if (raw === undefined)
    throw new Error(`${CONFIG_ENV} is not set: this module is started by local/s3/server.ts`);
  const options = JSON.parse(raw) as S3AppOptions;
  let app: Awaited<ReturnType<typeof startS3App>>;
  try {
    app = await startS3App(options);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    await send({
      type: 'failed',
      message: err instanceof Error ? err.message : String(err),
      ...(code ? { code } : {}),
    });
    process.exit(1);
  }
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // The parent went away (crashed or was killed): do not linger holding the port.
  process.on('disconnect', shutdown);
  await send({
    type: 'ready',
    port: app.port,
    bindsLoopbackOnly: app.bindsLoopbackOnly,
    validatesChecksums: app.validatesChecksums,
    ...(app.fallbackReason === undefined ? {} : { fallbackReason: app.fallbackReason }),
  });
}

await main();
