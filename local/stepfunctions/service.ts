// The Step Functions JSON 1.0 protocol on node:http: `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>`.
// Errors are HTTP 400 `{"__type", "message"}`, which @aws-sdk/client-sfn raises as the named exception. With a
// Gate, every request is authorized against its signer's IAM policy (signatures themselves are not checked).

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { z } from 'zod';
import type { AuthRequest } from '../iam/policies.ts';
import type { Gate } from '../iam/requests.ts';
import type { Engine } from './engine.ts';
import { SfnApiError } from './errors.ts';
import type { ExecutionRecord } from './executions.ts';

const MAX_BODY_BYTES = 10 * 1024 * 1024;
const TARGET_PREFIX = 'AWSStepFunctions.';
const STATUSES = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'] as const;

const schemas = {
  StartExecution: z.object({
    stateMachineArn: z.string(),
    name: z.string().optional(),
    input: z.string().optional(),
  }),
  DescribeExecution: z.object({ executionArn: z.string() }),
  StopExecution: z.object({
    executionArn: z.string(),
    error: z.string().optional(),
    cause: z.string().optional(),
  }),
  ListExecutions: z.object({
    stateMachineArn: z.string(),
    statusFilter: z.enum(STATUSES).optional(),
    maxResults: z.number().int().min(0).max(1000).optional(),
    nextToken: z.string().optional(),
  }),
  SendTaskSuccess: z.object({ taskToken: z.string().min(1).max(2048), output: z.string() }),
  SendTaskFailure: z.object({
    taskToken: z.string().min(1).max(2048),
    error: z.string().optional(),
    cause: z.string().optional(),
  }),
  SendTaskHeartbeat: z.object({ taskToken: z.string().min(1).max(2048) }),
};

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`);
  throw new SfnApiError('ValidationException', problems.join('; '));
}

/** Dates go over the wire as epoch seconds. */
const seconds = (epochMs: number) => epochMs / 1000;

function describe(record: ExecutionRecord) {
  return {
    executionArn: record.executionArn,
    stateMachineArn: record.stateMachineArn,
    name: record.name,
    status: record.status,
    startDate: seconds(record.startDate),
    ...(record.stopDate === undefined ? {} : { stopDate: seconds(record.stopDate) }),
    input: record.input,
    inputDetails: { included: true },
    ...(record.output === undefined ? {} : { output: record.output, outputDetails: { included: true } }),
    ...(record.error === undefined ? {} : { error: record.error }),
    ...(record.cause === undefined ? {} : { cause: record.cause }),
    redriveCount: 0,
    redriveStatus: 'NOT_REDRIVABLE',
  };
}

type Operation = (body: unknown) => unknown;

function operations(engine: Engine): Record<string, Operation> {
  return {
    StartExecution: (body) => {
      const request = parse(schemas.StartExecution, body);
      const record = engine.startExecution(request.stateMachineArn, request.name, request.input);
      return { executionArn: record.executionArn, startDate: seconds(record.startDate) };
    },
    DescribeExecution: (body) =>
      describe(engine.describeExecution(parse(schemas.DescribeExecution, body).executionArn)),
    StopExecution: (body) => {
      const request = parse(schemas.StopExecution, body);
      const record = engine.stopExecution(request.executionArn, request.error, request.cause);
      return { stopDate: seconds(record.stopDate ?? Date.now()) };
    },
    ListExecutions: (body) => {
      const request = parse(schemas.ListExecutions, body);
      const records = engine.listExecutions(request.stateMachineArn, request.statusFilter);
      const offset = request.nextToken === undefined ? 0 : Number.parseInt(request.nextToken, 36);
      if (!Number.isInteger(offset) || offset < 0) throw new SfnApiError('InvalidToken', 'Invalid nextToken');
      const limit = request.maxResults || 100;
      const page = records.slice(offset, offset + limit).map((record) => {
        const { input: _, output: __, error: ___, cause: ____, ...summary } = describe(record);
        return summary;
      });
      const next = offset + limit < records.length ? { nextToken: (offset + limit).toString(36) } : {};
      return { executions: page, ...next };
    },
    SendTaskSuccess: (body) => {
      const request = parse(schemas.SendTaskSuccess, body);
      engine.sendTaskSuccess(request.taskToken, request.output);
      return {};
    },
    SendTaskFailure: (body) => {
      const request = parse(schemas.SendTaskFailure, body);
      engine.sendTaskFailure(request.taskToken, request.error, request.cause);
      return {};
    },
    SendTaskHeartbeat: (body) => {
      engine.sendTaskHeartbeat(parse(schemas.SendTaskHeartbeat, body).taskToken);
      return {};
    },
  };
}

/** What IAM is asked for by each operation. */
function authRequests(engine: Engine, operation: string, body: Record<string, unknown>): AuthRequest[] {
  const action = `states:${operation}`;
  if (operation.startsWith('SendTask')) {
    const token = typeof body['taskToken'] === 'string' ? body['taskToken'] : '';
    return [{ action, resource: engine.stateMachineOfToken(token) ?? '*' }];
  }
  const arn = body['executionArn'] ?? body['stateMachineArn'];
  return [{ action, resource: typeof arn === 'string' ? arn : '*' }];
}

export function createService(engine: Engine, log: (line: string) => void, gate?: Gate): Server {
  const handlers = operations(engine);
  const authorize = gate
    ? (request: IncomingMessage, operation: string, body: unknown) => {
        const verdict = gate.check(request.headers, {}, () =>
          authRequests(engine, operation, (body ?? {}) as Record<string, unknown>),
        );
        if (!verdict.ok)
          throw new SfnApiError(
            verdict.code === 'AccessDenied' ? 'AccessDeniedException' : verdict.code,
            verdict.message,
          );
      }
    : undefined;
  return createServer((request, response) => {
    void handle(request, response, handlers, log, authorize);
  });
}

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  handlers: Record<string, Operation>,
  log: (line: string) => void,
  authorize: ((request: IncomingMessage, operation: string, body: unknown) => void) | undefined,
): Promise<void> {
  const requestId = randomUUID();
  try {
    const body = await readBody(request);
    const target = request.headers['x-amz-target'];
    const operation =
      typeof target === 'string' && target.startsWith(TARGET_PREFIX)
        ? target.slice(TARGET_PREFIX.length)
        : '';
    const handler = Object.hasOwn(handlers, operation) ? handlers[operation] : undefined;
    if (request.method !== 'POST' || !handler) {
      throw new SfnApiError(
        'UnknownOperationException',
        `unknown operation: ${String(target ?? '(no X-Amz-Target)')}`,
      );
    }
    let parsed: unknown;
    try {
      parsed = body.length === 0 ? {} : JSON.parse(body);
    } catch {
      throw new SfnApiError('SerializationException', 'request body is not JSON');
    }
    authorize?.(request, operation, parsed);
    send(response, 200, handler(parsed), requestId);
  } catch (error) {
    if (error instanceof SfnApiError) {
      send(response, 400, { __type: error.type, message: error.message }, requestId, error.type);
    } else {
      log(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      send(
        response,
        500,
        { __type: 'InternalFailure', message: String(error) },
        requestId,
        'InternalFailure',
      );
    }
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new SfnApiError('ValidationException', 'request body is too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(
  response: ServerResponse,
  status: number,
  body: unknown,
  requestId: string,
  errorType?: string,
): void {
  response.writeHead(status, {
    'content-type': 'application/x-amz-json-1.0',
    'x-amzn-requestid': requestId,
    ...(errorType === undefined ? {} : { 'x-amzn-errortype': errorType }),
  });
  response.end(JSON.stringify(body));
}
