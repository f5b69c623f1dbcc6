// Lambda entry of the API: the same Hono app as the local cloud, behind API Gateway with IAM authorization.
import { handle } from 'hono/aws-lambda';
import { lambdaRuntime } from '../aws/deps.ts';
import { createApp } from './app.ts';
import { apiDeps } from './deps.ts';
import { iamAuthenticate } from './iam-principals.ts';

export const handler = handle(createApp(apiDeps(iamAuthenticate(), lambdaRuntime())));
