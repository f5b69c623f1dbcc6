// The front door of the local DynamoDB: an HTTP proxy before Amazon's DynamoDB Local that authorizes every request
// against its signer's IAM policy, as DynamoDB does (AccessDeniedException, HTTP 400), and passes the rest through
// unchanged. DynamoDB Local itself checks no permissions.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Gate } from './iam/requests.ts';
import { dynamodbRequests } from './iam/requests.ts';
import { describeListenError, LOOPBACK } from './ports.ts';

export interface DynamoDbFrontOptions {
  readonly port: number;
  /** DynamoDB Local's endpoint. */
  readonly upstream: string;
  readonly gate: Gate;
  readonly account: string;
}

export interface DynamoDbFront {
  readonly endpoint: string;
  stop(): Promise<void>;
}

const TARGET = 'DynamoDB_20120810.';
/** DynamoDB's own request limit is 16 MB (BatchWriteItem); larger bodies are not read into memory here. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

export async function startDynamoDbFront(options: DynamoDbFrontOptions): Promise<DynamoDbFront> {
  const upstream = new URL(options.upstream);
  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) deny(res, 500, 'InternalServerError', err.message);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return deny(res, 413, 'RequestEntityTooLarge', 'request body too large');
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks);
    const target = String(req.headers['x-amz-target'] ?? '');
    if (target.startsWith(TARGET)) {
      let parsed: Record<string, unknown> = {};
      try {
        parsed = body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
      } catch {
        // Malformed JSON: DynamoDB Local answers that itself.
      }
      const operation = target.slice(TARGET.length);
      const verdict = options.gate.check(req.headers, {}, (region) =>
        dynamodbRequests(operation, parsed, region, options.account),
      );
      if (!verdict.ok) {
        return deny(
          res,
          400,
          verdict.code === 'AccessDenied' ? 'AccessDeniedException' : 'UnrecognizedClientException',
          verdict.message,
        );
      }
    }
    await new Promise<void>((resolve, reject) => {
      const forward = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host, 'content-length': String(body.length) },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          answer.on('end', resolve);
          answer.on('error', reject);
        },
      );
      forward.on('error', reject);
      forward.end(body);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(describeListenError(err, options.port, 'the local DynamoDB front')));
    server.listen({ host: LOOPBACK, port: options.port, exclusive: true }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function deny(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-errortype': type });
  res.end(JSON.stringify({ __type: `com.amazon.coral.service#${type}`, message }));
}
