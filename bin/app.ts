// CDK app entry (`npx cdk synth`, `npx cdk deploy --all`): every stack of the deployment from the topology and the
// `vmmig:*` settings in cdk.json context, checked by cdk-nag AwsSolutions at synthesis. Works offline: no lookups.
import { App } from 'aws-cdk-lib';
import { buildDeployment } from '../lib/app.ts';
import { deploymentSettings } from '../lib/settings.ts';

const app = new App();
buildDeployment(
  app,
  deploymentSettings((key) => app.node.tryGetContext(key)),
  {
    account: process.env['CDK_DEFAULT_ACCOUNT'],
  },
);
app.synth();
