// S3 buckets with the house defaults: S3-managed encryption, all public access blocked, TLS-only bucket policy,
// abort of incomplete multipart uploads, server access logs to a log bucket of the same stack.
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { acknowledge, REASONS } from '../nag.ts';

export interface LogBucketProps {
  /** CloudFront standard logging writes with ACLs; S3 server access logs use the bucket policy. @default false */
  readonly forCloudFront?: boolean;
  /** @default 90 */
  readonly expireAfterDays?: number;
}

/** A bucket that receives access logs; it is itself not logged (that would loop). */
export function logBucket(scope: Construct, id: string, props: LogBucketProps = {}): s3.Bucket {
  const bucket = new s3.Bucket(scope, id, {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    objectOwnership: props.forCloudFront
      ? s3.ObjectOwnership.BUCKET_OWNER_PREFERRED
      : s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    lifecycleRules: [
      { id: 'expire-logs', expiration: Duration.days(props.expireAfterDays ?? 90) },
      { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
    ],
    removalPolicy: RemovalPolicy.RETAIN,
  });
  // S3 server access log buckets count as logging targets for cdk-nag; CloudFront's does not.
  if (props.forCloudFront) acknowledge(bucket, 'AwsSolutions-S1', REASONS.logBucket);
  return bucket;
}

export interface DataBucketProps {
  readonly bucketName?: string;
  readonly serverAccessLogsBucket: s3.Bucket;
  readonly serverAccessLogsPrefix: string;
  readonly replicationRules?: s3.ReplicationRule[];
  /** Days a replaced or deleted object version is kept. @default 7 */
  readonly noncurrentVersionDays?: number;
}

/** A versioned bucket for chunks or control objects. */
export function dataBucket(scope: Construct, id: string, props: DataBucketProps): s3.Bucket {
  return new s3.Bucket(scope, id, {
    ...(props.bucketName ? { bucketName: props.bucketName } : {}),
    versioned: true,
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    enforceSSL: true,
    minimumTLSVersion: 1.2,
    // A cast, not a conversion: CDK classes miss their own interfaces under exactOptionalPropertyTypes.
    serverAccessLogsBucket: props.serverAccessLogsBucket as s3.IBucket,
    serverAccessLogsPrefix: props.serverAccessLogsPrefix,
    lifecycleRules: [
      { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      {
        id: 'expire-noncurrent-versions',
        noncurrentVersionExpiration: Duration.days(props.noncurrentVersionDays ?? 7),
        expiredObjectDeleteMarker: true,
      },
    ],
    ...(props.replicationRules && props.replicationRules.length > 0
      ? { replicationRules: props.replicationRules }
      : {}),
    removalPolicy: RemovalPolicy.RETAIN,
  });
}
