// Deploy-time Lambda code (runs only while CloudFormation creates, updates or deletes a custom resource): the
// request CloudFormation sends and the response it waits for at the presigned ResponseURL.
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';

export type CustomResourceEvent = CloudFormationCustomResourceEvent;

export interface CustomResourceResult {
  readonly physicalResourceId: string;
  readonly data?: Record<string, string>;
}

/** Runs `work` for the event and reports the outcome; CloudFormation waits up to an hour for a missing answer. */
export async function respondTo(
  event: CustomResourceEvent,
  work: (event: CustomResourceEvent) => Promise<CustomResourceResult>,
  send: typeof fetch = fetch,
): Promise<void> {
  let body: Record<string, unknown>;
  try {
    const result = await work(event);
    body = {
      Status: 'SUCCESS',
      PhysicalResourceId: result.physicalResourceId,
      ...(result.data ? { Data: result.data } : {}),
    };
  } catch (err) {
    console.error(err);
    body = {
      Status: 'FAILED',
      Reason: `${(err as Error).name}: ${(err as Error).message}`.slice(0, 1000),
      // A failed Create has no physical id yet; reuse the request id so CloudFormation can roll back.
      PhysicalResourceId: 'PhysicalResourceId' in event ? event.PhysicalResourceId : event.RequestId,
    };
  }
  const res = await send(event.ResponseURL, {
    method: 'PUT',
    // The presigned URL is signed without a content type.
    headers: { 'content-type': '' },
    body: JSON.stringify({
      ...body,
      StackId: event.StackId,
      RequestId: event.RequestId,
      LogicalResourceId: event.LogicalResourceId,
    }),
  });
  if (!res.ok) throw new Error(`CloudFormation response rejected: HTTP ${res.status}`);
}
