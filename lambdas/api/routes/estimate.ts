// Pre-flight estimate (re-migration of a changed image moves only the changed chunks): which of the image's
// chunks the source's and the destination's cache nodes, or any node, already hold.
import * as api from '../../../protocol/api/estimate.ts';
import { forbidden, invalid } from '../../domain/errors.ts';
import { chooseCacheNode } from '../../domain/registry.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';

export function estimateRoutes(deps: ApiDeps) {
  return router().openapi(api.createEstimate, async (c) => {
    const body = c.req.valid('json');
    const p = c.get('principal');
    if (p.kind === 'agent' && body.sourceDataCenterId !== p.dataCenterId) {
      throw forbidden(
        `the agent of "${p.dataCenterId}" may estimate only from its own data center (sourceDataCenterId)`,
      );
    }
    const chunks = [...new Map(body.chunks.map((x) => [x.sha256, x])).values()];
    const nodes = await deps.registry.allCacheNodes();
    const nodeFor = async (dataCenterId: string, field: string) => {
      const dc = await deps.registry.requireDataCenter(dataCenterId);
      const choice = chooseCacheNode(dc, nodes);
      if (!choice) throw invalid(field, `no active cache node serves data center "${dataCenterId}"`);
      return choice.id;
    };
    const destinationNode = await nodeFor(body.destinationDataCenterId, 'destinationDataCenterId');
    const sourceNode = body.sourceDataCenterId
      ? await nodeFor(body.sourceDataCenterId, 'sourceDataCenterId')
      : undefined;
    const usable = nodes.filter((n) => n.status !== 'down').map((n) => n.id);
    const holders = await deps.contentIndex.holders(
      chunks.map((x) => x.sha256),
      usable,
    );
    const sum = (pred: (sha: string) => boolean) => {
      const hit = chunks.filter((x) => pred(x.sha256));
      return { chunks: hit.length, bytes: hit.reduce((n, x) => n + x.length, 0) };
    };
    const held = (sha: string, node: string) => holders.get(sha)?.has(node) === true;
    return c.json(
      {
        chunks: chunks.length,
        bytes: chunks.reduce((n, x) => n + x.length, 0),
        ...(sourceNode
          ? { source: { cacheNodeId: sourceNode, cached: sum((s) => held(s, sourceNode)) } }
          : {}),
        destination: { cacheNodeId: destinationNode, cached: sum((s) => held(s, destinationNode)) },
        cachedAnywhere: sum((s) => holders.has(s)),
        toUpload: sum((s) => !holders.has(s)),
        // Uploads land at the source's cache node: when that is another node, they are copied too.
        toCopy: sum(
          (s) =>
            !held(s, destinationNode) &&
            (holders.has(s) || (sourceNode !== undefined && sourceNode !== destinationNode)),
        ),
      },
      200,
    );
  });
}
