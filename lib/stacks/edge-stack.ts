// The CloudFront distribution in front of every cache node bucket (the draft's CDN delivery): one origin per cache
// node through origin access control, one behaviour per cache node path `/<id>/chunks/*`, signed URLs only (trusted
// key group with the key pairs of the current and the previous generation, generated at deploy), HTTPS only,
// immutable caching of chunks, standard access logs.
import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import type { CacheNodeConfig } from '../../protocol/topology.ts';
import { logBucket } from '../constructs/buckets.ts';
import { EdgeKeyPair } from '../constructs/edge-key-pair.ts';
import { NOT_FOUND, STRIP_CACHE_NODE_PREFIX } from '../edge/functions.ts';
import { acknowledge } from '../nag.ts';
import type { DeploymentNames } from '../naming.ts';
import type { DeploymentSettings } from '../settings.ts';

/** CloudFront allows 25 cache behaviours per distribution by default; one stays the default behaviour. */
export const MAX_CACHE_NODES = 24;

/** An S3 bucket origin reached through origin access control, for a bucket of another region's stack. */
class ChunkBucketOrigin extends cloudfront.OriginBase {
  // Public: OriginBase's constructor is protected.
  constructor(domainName: string, props: cloudfront.OriginProps) {
    super(domainName, props);
  }

  protected override renderS3OriginConfig(): cloudfront.CfnDistribution.S3OriginConfigProperty {
    return { originAccessIdentity: '' };
  }
}

export interface EdgeStackProps extends StackProps {
  readonly names: DeploymentNames;
  readonly settings: DeploymentSettings;
}

export class EdgeStack extends Stack {
  readonly distribution: cloudfront.Distribution;
  readonly keyPair: EdgeKeyPair;
  /** EDGE_BASE_URL: `https://<distribution or custom domain>`. */
  readonly baseUrl: string;

  constructor(scope: Construct, id: string, props: EdgeStackProps) {
    super(scope, id, props);
    const { names, settings } = props;
    const cacheNodes = settings.topology.cacheNodes;
    if (cacheNodes.length > MAX_CACHE_NODES) {
      throw new Error(
        `at most ${MAX_CACHE_NODES} cache nodes fit one distribution; the topology has ${cacheNodes.length}`,
      );
    }
    const retention = settings.logRetentionDays as logs.RetentionDays;

    this.keyPair = new EdgeKeyPair(this, 'SigningKey', {
      readerRoleArn: names.roleArn(this, names.apiRoleName),
      generation: settings.edgeKeyGeneration,
      logRetention: retention,
    });

    const stripPrefix = new cloudfront.Function(this, 'StripCacheNodePrefix', {
      comment: 'Maps /<cacheNodeId>/chunks/<hh>/<sha256> to the bucket key chunks/<hh>/<sha256>',
      code: cloudfront.FunctionCode.fromInline(STRIP_CACHE_NODE_PREFIX),
      runtime: cloudfront.FunctionRuntime.JS_2_0,
    });
    const notFound = new cloudfront.Function(this, 'NotFound', {
      comment: 'Nothing outside /<cacheNodeId>/chunks/ is served',
      code: cloudfront.FunctionCode.fromInline(NOT_FOUND),
      runtime: cloudfront.FunctionRuntime.JS_2_0,
    });
    const chunkCaching = new cloudfront.CachePolicy(this, 'ImmutableChunks', {
      comment: 'Chunks are named by their SHA-256 and never change: cache for a year, key on the path only',
      defaultTtl: Duration.days(365),
      minTtl: Duration.days(365),
      maxTtl: Duration.days(365),
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.none(),
      headerBehavior: cloudfront.CacheHeaderBehavior.none(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      // Chunks are disk image bytes: compression costs CPU and gains little.
      enableAcceptEncodingGzip: false,
      enableAcceptEncodingBrotli: false,
    });
    const chunkHeaders = new cloudfront.ResponseHeadersPolicy(this, 'ChunkHeaders', {
      comment: 'Immutable chunks; HTTPS only',
      customHeadersBehavior: {
        customHeaders: [
          { header: 'Cache-Control', value: 'public, max-age=31536000, immutable', override: true },
        ],
      },
      securityHeadersBehavior: {
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(365),
          includeSubdomains: true,
          override: true,
        },
        contentTypeOptions: { override: true },
      },
    });

    const origins = new Map<string, cloudfront.IOrigin>();
    for (const node of cacheNodes) {
      const oac = new cloudfront.S3OriginAccessControl(this, `Oac-${node.id}`, {
        description: `CloudFront reads cache node ${node.id} (${node.region})`,
        signing: cloudfront.Signing.SIGV4_ALWAYS,
      });
      const bucket = s3.Bucket.fromBucketAttributes(this, `Bucket-${node.id}`, {
        bucketName: names.cacheBucketName(this.account, node.id),
        region: node.region,
      });
      origins.set(
        node.id,
        new ChunkBucketOrigin(bucket.bucketRegionalDomainName, {
          originId: `cache-node-${node.id}`,
          originAccessControlId: oac.originAccessControlId,
        }),
      );
    }
    const originOf = (id: string) => {
      const origin = origins.get(id);
      if (!origin) throw new Error(`no origin for cache node ${id}`);
      return origin;
    };
    const signedOnly = {
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
      cachedMethods: cloudfront.CachedMethods.CACHE_GET_HEAD,
      trustedKeyGroups: [this.keyPair.keyGroup],
      compress: false,
    };

    const logs_ = logBucket(this, 'AccessLogs', { forCloudFront: true });
    const domain = settings.edgeDomain;
    const first = cacheNodes[0] as CacheNodeConfig;
    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: `${names.prefix}: chunk downloads from the cache nodes (signed URLs only)`,
      defaultBehavior: {
        ...signedOnly,
        origin: originOf(first.id),
        cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
        functionAssociations: [
          { function: notFound, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST },
        ],
      },
      additionalBehaviors: Object.fromEntries(
        cacheNodes.map((node) => [
          `/${node.id}/chunks/*`,
          {
            ...signedOnly,
            origin: originOf(node.id),
            cachePolicy: chunkCaching,
            responseHeadersPolicy: chunkHeaders,
            functionAssociations: [
              { function: stripPrefix, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST },
            ],
          } satisfies cloudfront.BehaviorOptions,
        ]),
      ),
      // A chunk not yet replicated must not be remembered as missing.
      errorResponses: [403, 404].map((httpStatus) => ({ httpStatus, ttl: Duration.seconds(0) })),
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_ALL,
      enableLogging: true,
      logBucket: logs_ as s3.IBucket, // see lib/constructs/buckets.ts on the cast
      logFilePrefix: 'cloudfront/',
      ...(domain
        ? {
            domainNames: [domain.domainName],
            certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', domain.certificateArn),
            minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
          }
        : {}),
    });
    if (!domain) {
      acknowledge(
        this.distribution,
        'AwsSolutions-CFR4',
        'Without a custom domain CloudFront serves *.cloudfront.net with its default certificate, whose security ' +
          'policy AWS fixes at TLSv1 and which cannot be changed. The only clients are vmmig agents on Node 24, ' +
          'whose TLS floor is 1.2, so no connection below TLS 1.2 is made. Set context vmmig:edgeDomain to have ' +
          'CloudFront itself refuse anything below TLSv1.2_2021.',
      );
    }
    acknowledge(
      this.distribution,
      'AwsSolutions-CFR1',
      'Agents run in data centers in any country; access is controlled per object by signed URLs that expire, ' +
        'not by the viewer location.',
    );
    acknowledge(
      this.distribution,
      'AwsSolutions-CFR2',
      'Every behaviour requires a signed URL checked by CloudFront itself before the origin is reached, and only ' +
        'GET/HEAD of immutable objects is allowed; a WAF web ACL would add cost without blocking anything more.',
    );

    this.baseUrl = `https://${domain ? domain.domainName : this.distribution.distributionDomainName}`;
    new CfnOutput(this, 'EdgeBaseUrl', { value: this.baseUrl });
    new CfnOutput(this, 'KeyPairId', { value: this.keyPair.current.publicKey.publicKeyId });
  }
}
