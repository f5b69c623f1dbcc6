// DynamoDB Local as the local cloud runs it: start/stop, persistence across restarts, loopback binding, port
// conflicts. The DynamoDB features our code relies on are checked in local-dynamodb-features.test.ts.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DynamoDbLocal, startDynamoDbLocal } from '../../local/dynamodb.ts';
import { detectJava, JavaNotFoundError, parseJavaVersion } from '../../local/java.ts';
import { findFreePort, PortInUseError } from '../../local/ports.ts';

let dataDir: string;
let port: number;
let server: DynamoDbLocal;
let db: DynamoDBClient;

function client(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

async function createTable(
  name: string,
  extra: Partial<ConstructorParameters<typeof CreateTableCommand>[0]> = {},
) {
  await db.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      ...extra,
    }),
  );
}

function nonLoopbackIpv4(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function connectOutcome(host: string, targetPort: number): Promise<'connected' | string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port: targetPort });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'vmmig-ddb-'));
  port = await findFreePort();
  server = await startDynamoDbLocal({ dataDir: join(dataDir, 'nested', 'db'), port });
  db = client(server.endpoint);
});

afterAll(async () => {
  db?.destroy();
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('Java detection', () => {
  it('finds Java 17+ on PATH', async () => {
    expect((await detectJava()).majorVersion).toBeGreaterThanOrEqual(17);
  });

  it('says what to install when java is missing or too old', async () => {
    const missing = detectJava('DynamoDB Local', 17, 'java-that-does-not-exist');
    await expect(missing).rejects.toBeInstanceOf(JavaNotFoundError);
    await expect(missing).rejects.toThrow(/not found on PATH.*openjdk-17/);
    const old = join(dataDir, 'old-java');
    await writeFile(old, '#!/bin/sh\necho \'java version "1.8.0_391"\' >&2\n');
    await chmod(old, 0o755);
    await expect(detectJava('DynamoDB Local', 17, old)).rejects.toThrow(/is Java 8 \(1\.8\.0_391\).*Install/);
  });

  it('reads old and new version strings', () => {
    expect(parseJavaVersion('java version "1.8.0_391"')?.majorVersion).toBe(8);
    expect(parseJavaVersion('openjdk version "17.0.15" 2025-04-15')?.majorVersion).toBe(17);
    expect(parseJavaVersion('openjdk version "21" 2023-09-19')?.majorVersion).toBe(21);
    expect(parseJavaVersion('openjdk version "25-ea" 2025-09-16')?.majorVersion).toBe(25);
    expect(parseJavaVersion('no version here')).toBeUndefined();
  });
});

describe('DynamoDB Local server', () => {
  it('listens on loopback only', async () => {
    expect(server.endpoint).toBe(`http://127.0.0.1:${port}`);
    expect(server.bindsLoopbackOnly).toBe(true);
    expect(await connectOutcome('127.0.0.1', port)).toBe('connected');
  });

  it.skipIf(nonLoopbackIpv4() === undefined)('refuses connections on a non-loopback address', async () => {
    expect(await connectOutcome(nonLoopbackIpv4() ?? '', port)).toBe('ECONNREFUSED');
  });

  it('names the port and the component when the port is taken', async () => {
    const attempt = startDynamoDbLocal({ dataDir: join(dataDir, 'other'), port });
    await expect(attempt).rejects.toBeInstanceOf(PortInUseError);
    await expect(attempt).rejects.toThrow(new RegExp(`DynamoDB Local .*port ${port}`));
  });

  it('keeps tables and items across a restart on the same data directory', async () => {
    await createTable('persisted');
    await db.send(new PutItemCommand({ TableName: 'persisted', Item: { pk: { S: 'a' }, n: { N: '42' } } }));
    db.destroy();
    await server.stop();
    await server.stop(); // idempotent
    expect(await connectOutcome('127.0.0.1', port)).toBe('ECONNREFUSED');

    server = await startDynamoDbLocal({ dataDir: join(dataDir, 'nested', 'db'), port });
    db = client(server.endpoint);
    const { Item } = await db.send(new GetItemCommand({ TableName: 'persisted', Key: { pk: { S: 'a' } } }));
    expect(Item).toEqual({ pk: { S: 'a' }, n: { N: '42' } });
  });
});
