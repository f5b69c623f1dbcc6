// The Hono environment shared by every route module.
import { OpenAPIHono } from '@hono/zod-openapi';
import { validationResponse } from './errors.ts';
import type { Principal } from './principal.ts';

export interface AppEnv {
  Variables: { principal: Principal };
}

/** A router whose request validation failures become our 400 body naming the field. */
export function router(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return validationResponse(c, result.error, result.target);
      return undefined;
    },
  });
}
