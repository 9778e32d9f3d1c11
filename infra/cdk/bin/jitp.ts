#!/usr/bin/env node
// CDK app: one jitp stack, configured through context (cdk.json defaults, `-c jitp:<name>=<value>` overrides).
import { App } from 'aws-cdk-lib';
import { configFromContext } from '../lib/config';
import { JitpStack } from '../lib/jitp-stack';

const app = new App();
// Offline checks (scripts/test-infra.sh) synthesize without building the Rust function: cargo-lambda and Docker
// are not needed then. The CLI refuses `aws:` context keys on its command line, hence the variable.
if (process.env.JITP_SKIP_BUNDLING === '1') {
  app.node.setContext('aws:cdk:bundling-stacks', []);
}
const stackName = (app.node.tryGetContext('jitp:stackName') as string | undefined) ?? 'Jitp';
new JitpStack(app, stackName, {
  config: configFromContext((key) => app.node.tryGetContext(key)),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  description: 'jitp: just-in-time provisioning for AWS IoT Core (certificate auto-registration)',
  analyticsReporting: false,
});
