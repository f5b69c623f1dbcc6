// One cache node (draft: CCN) in its own region: the bucket that holds its chunks, readable by the CloudFront
// distribution only (origin access control), plus standing S3 replication to the cache nodes it backs up to.
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import type { CacheNodeConfig } from '../../protocol/topology.ts';
import { dataBucket, logBucket } from '../constructs/buckets.ts';
import { acknowledgeWildcardResource } from '../nag.ts';
import type { DeploymentNames } from '../naming.ts';

export interface CacheNodeStackProps extends StackProps {
  readonly names: DeploymentNames;
  readonly cacheNode: CacheNodeConfig;
  /** Standing replication targets (topology `replicationPairs` whose `from` is this node). */
  readonly replicateTo: readonly CacheNodeConfig[];
  /** The CloudFront distribution allowed to read chunks (a cross-region reference to the edge stack). */
  readonly distributionArn: string;
}

export class CacheNodeStack extends Stack {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: CacheNodeStackProps) {
    super(scope, id, props);
    const { names, cacheNode } = props;
    const logs = logBucket(this, 'AccessLogs');
    // Replication needs the destination bucket to exist: the app deploys destination stacks first.
    const replicationRules: s3.ReplicationRule[] = props.replicateTo.map((to, i) => ({
      id: `backup-to-${to.id}`,
      destination: s3.Bucket.fromBucketAttributes(this, `Replica-${to.id}`, {
        bucketName: names.cacheBucketName(this.account, to.id),
        region: to.region,
      }),
      priority: props.replicateTo.length - i,
      filter: { prefix: 'chunks/' },
      deleteMarkerReplication: false,
    }));
    this.bucket = dataBucket(this, 'Chunks', {
      bucketName: names.cacheBucketName(this.account, cacheNode.id),
      serverAccessLogsBucket: logs,
      serverAccessLogsPrefix: 'chunks/',
      replicationRules,
    });
    // Chunks are read only through CloudFront, only by this distribution, only under chunks/.
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudFrontReadsChunks',
        principals: [new iam.ServicePrincipal('cloudfront.amazonaws.com')],
        actions: ['s3:GetObject'],
        resources: [this.bucket.arnForObjects('chunks/*')],
        conditions: { StringEquals: { 'AWS:SourceArn': props.distributionArn } },
      }),
    );
    if (replicationRules.length > 0) this.acknowledgeReplicationRole(props);
    new CfnOutput(this, 'BucketName', { value: this.bucket.bucketName });
  }

  /** The replication role CDK creates works on object versions of whole buckets, named by ARN. */
  private acknowledgeReplicationRole(props: CacheNodeStackProps): void {
    const role = this.bucket.node.tryFindChild('ReplicationRole');
    if (!role) throw new Error('the bucket has replication rules but CDK created no ReplicationRole');
    const why =
      'S3 replication reads and writes object versions, which IAM names only as <bucket ARN>/*; the role is ' +
      'limited to the replication actions on this bucket and its replication targets.';
    acknowledgeWildcardResource(role, `${this.bucket.bucketArn}/*`, why);
    for (const to of props.replicateTo) {
      acknowledgeWildcardResource(role, `${props.names.cacheBucketArn(this, to.id)}/*`, why);
    }
  }
}
