// Read access to the draft's mapping tables. An agent sees only rows of its own data center.
import * as api from '../../../protocol/api/mapping.ts';
import { forbidden, invalid } from '../../domain/errors.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';

export function mappingRoutes({ mapping }: ApiDeps) {
  return router()
    .openapi(api.listContentMap, async (c) => {
      const { limit, cursor, ...filters } = c.req.valid('query');
      const p = c.get('principal');
      if (p.kind === 'agent') {
        if (filters.dataCenterId !== undefined && filters.dataCenterId !== p.dataCenterId) {
          throw forbidden(`the agent of "${p.dataCenterId}" may read only its own rows`);
        }
        filters.dataCenterId = p.dataCenterId;
      }
      return c.json(await mapping.queryContentMap(filters, limit, cursor), 200);
    })
    .openapi(api.listLocationMap, async (c) => {
      const { limit, cursor, ...filters } = c.req.valid('query');
      const p = c.get('principal');
      if (p.kind === 'admin') return c.json(await mapping.queryLocationMap(filters, limit, cursor), 200);
      const mine = p.dataCenterId;
      for (const side of ['sourceDataCenterId', 'destinationDataCenterId'] as const) {
        const other =
          side === 'sourceDataCenterId' ? filters.destinationDataCenterId : filters.sourceDataCenterId;
        if (filters[side] !== undefined && filters[side] !== mine && other !== mine) {
          throw forbidden(
            `the agent of "${mine}" may read only rows where "${mine}" is the source or destination`,
          );
        }
      }
      const pinned = filters.sourceDataCenterId === mine || filters.destinationDataCenterId === mine;
      if (!pinned && filters.migrationId === undefined) {
        throw invalid(
          'sourceDataCenterId',
          `an agent must filter by migrationId, sourceDataCenterId=${mine} or destinationDataCenterId=${mine}`,
        );
      }
      const anyOf = pinned
        ? undefined
        : { attributes: ['sourceDataCenterId', 'destinationDataCenterId'], value: mine };
      return c.json(await mapping.queryLocationMap(filters, limit, cursor, anyOf), 200);
    });
}
