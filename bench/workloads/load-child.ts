// Child process of P6, so the load generator does not share an event loop (or a core's worth of scheduling) with
// the API it measures. `http <json options>` runs autocannon at a fixed rate; `dynamodb <json>` sends the two reads
// a status request makes (GetItem + Query on the migration) straight to DynamoDB Local at the same fixed rate.
// Prints one JSON line with latency percentiles in milliseconds.
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import autocannon from 'autocannon';

interface HttpJob {
  readonly url: string;
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly rate: number;
  readonly seconds: number;
  readonly connections: number;
  /** A fresh Idempotency-Key header on every request (creates). */
  readonly uniqueKey?: boolean;
}

interface DynamoJob {
  readonly endpoint: string;
  readonly region: string;
  readonly table: string;
  readonly migrationId: string;
  readonly rate: number;
  readonly seconds: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly non2xx: number;
  readonly ratePerSecond: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

async function http(job: HttpJob): Promise<LoadResult> {
  const result = await autocannon({
    url: job.url,
    method: job.method,
    headers: job.headers,
    ...(job.body !== undefined ? { body: job.body } : {}),
    connections: job.connections,
    overallRate: job.rate,
    duration: job.seconds,
    ...(job.uniqueKey
      ? {
          requests: [
            {
              setupRequest: (req: { headers: Record<string, string> }) => {
                req.headers = { ...req.headers, 'idempotency-key': randomUUID() };
                return req;
              },
            },
          ],
        }
      : {}),
  });
  return {
    requests: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    ratePerSecond: result.requests.total / job.seconds,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
  };
}

async function dynamodb(job: DynamoJob): Promise<LoadResult> {
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: job.endpoint,
      region: job.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    }),
  );
  const read = async () => {
    await doc.send(
      new GetCommand({
        TableName: job.table,
        Key: { pk: `MIG#${job.migrationId}`, sk: 'META' },
        ConsistentRead: true,
      }),
    );
    await doc.send(
      new QueryCommand({
        TableName: job.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :h)',
        ExpressionAttributeValues: { ':pk': `MIG#${job.migrationId}`, ':h': 'H#' },
        ScanIndexForward: false,
        Limit: 200,
        ConsistentRead: true,
      }),
    );
  };
  for (let i = 0; i < 20; i++) await read(); // connections and JIT warm, as autocannon's first requests are
  const latencies: number[] = [];
  let errors = 0;
  const interval = 1000 / job.rate;
  const total = Math.round(job.rate * job.seconds);
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    // Open loop: each request is due at its slot and timed from the slot (no coordinated omission).
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(
      read().then(
        () => {
          latencies.push(performance.now() - due);
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(inFlight);
  const sorted = latencies.sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    requests: total,
    errors,
    non2xx: 0,
    ratePerSecond: total / ((performance.now() - start) / 1000),
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1] ?? 0,
  };
}

const [mode, raw] = process.argv.slice(2);
const job = JSON.parse(raw ?? '{}') as HttpJob & DynamoJob;
const out = mode === 'dynamodb' ? await dynamodb(job) : await http(job);
process.stdout.write(`${JSON.stringify(out)}\n`);
