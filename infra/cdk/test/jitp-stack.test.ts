// Assertion tests for the jitp CDK stack, run by node's own test runner (`npm test`): synthesis only, no AWS
// account, no Rust build (bundling is skipped through the aws:cdk:bundling-stacks context).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { JitpConfig, resolveConfig } from '../lib/config';
import {
  BATCH_SIZE,
  DUPLICATE_CLIENT_ID_PATTERN,
  FUNCTION_TIMEOUT,
  IOT_ACTIONS,
  JitpStack,
  loadIamActions,
  MAX_RECEIVE_COUNT,
} from '../lib/jitp-stack';

const CA_A = 'a'.repeat(64);
const CA_B = '0123456789abcdef'.repeat(4);

function synth(overrides: Partial<Record<keyof JitpConfig, unknown>> = {}): Template {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new JitpStack(app, 'JitpTest', {
    config: resolveConfig({ caCertificateIds: [CA_A, CA_B], ...overrides }),
    env: { account: '123456789012', region: 'eu-west-1' },
  });
  return Template.fromStack(stack);
}

type Statement = { Action: string | string[]; Resource: unknown; Effect: string; Sid?: string };

/** The statements of the policies attached to the provisioning function's roles, or (drift) the drift function's. */
function statementsOf(template: Template, drift = false): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  const isDrift = (p: { [key: string]: any }) =>
    (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref.startsWith('DriftFunctionRole'));
  return Object.values(policies)
    .filter((p) => isDrift(p) === drift)
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

const asList = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** The last literal piece of a CDK ARN token (`{Fn::Join: ['', ['arn:', ..., ':cert/*']]}` -> ':cert/*'). */
function arnTail(resource: unknown): string {
  if (typeof resource === 'string') return resource;
  const join = (resource as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) {
    const last = join[1][join[1].length - 1];
    if (typeof last === 'string') return last;
  }
  return JSON.stringify(resource);
}

const sqsDefault = synth({ alarmEmail: 'ops@example.com' });
const direct = synth({ deliveryMode: 'direct' });

describe('topic rules', () => {
  it('has one rule per CA on its certificate-registered topic, SQL version 2016-03-23', () => {
    const rules = sqsDefault.findResources('AWS::IoT::TopicRule');
    const sqls = Object.values(rules).map((r) => r.Properties.TopicRulePayload.Sql).sort();
    assert.deepEqual(sqls, [
      `SELECT * FROM '$aws/events/certificates/registered/${CA_B}'`,
      `SELECT * FROM '$aws/events/certificates/registered/${CA_A}'`,
    ].sort());
    for (const rule of Object.values(rules)) {
      assert.equal(rule.Properties.TopicRulePayload.AwsIotSqlVersion, '2016-03-23');
      assert.equal(rule.Properties.TopicRulePayload.RuleDisabled, false);
    }
  });

  it('sends to the event queue through its own role in sqs mode', () => {
    sqsDefault.hasResourceProperties('AWS::IoT::TopicRule', {
      TopicRulePayload: {
        Actions: [{ Sqs: { QueueUrl: { Ref: Match.stringLikeRegexp('^EventQueue') }, RoleArn: Match.anyValue() } }],
      },
    });
  });

  it('has an error action to CloudWatch Logs with a role that AWS IoT of this account assumes', () => {
    const rules = Object.values(sqsDefault.findResources('AWS::IoT::TopicRule'));
    for (const rule of rules) {
      const error = rule.Properties.TopicRulePayload.ErrorAction.CloudwatchLogs;
      assert.ok(error, 'error action is CloudwatchLogs');
      assert.match(error.LogGroupName.Ref, /^RuleErrorLogGroup/);
      const roleId = error.RoleArn['Fn::GetAtt'][0];
      const role = sqsDefault.findResources('AWS::IAM::Role')[roleId];
      const trust = role.Properties.AssumeRolePolicyDocument.Statement[0];
      assert.deepEqual(trust.Principal, { Service: 'iot.amazonaws.com' });
      assert.ok(trust.Condition.StringEquals['aws:SourceAccount'], 'trust limited by aws:SourceAccount');
    }
  });

  it('rejects a malformed CA id', () => {
    assert.throws(() => synth({ caCertificateIds: ['not-a-ca-id'] }), /64 lowercase hex/);
    assert.throws(() => synth({ caCertificateIds: [] }), /caCertificateIds is required/);
  });
});

describe('sqs delivery', () => {
  it('feeds the function through an event source mapping with batch size, max concurrency and batch item failures', () => {
    sqsDefault.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    sqsDefault.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: BATCH_SIZE,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 3 },
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EventQueue'), 'Arn'] },
    });
  });

  it('encrypts the queue, dead-letters after N receives, and keeps visibility >= 6x the function timeout', () => {
    const queues = sqsDefault.findResources('AWS::SQS::Queue');
    const main = Object.entries(queues).find(([id]) => id.startsWith('EventQueue'));
    assert.ok(main);
    const props = main[1].Properties;
    assert.equal(props.KmsMasterKeyId, 'alias/aws/sqs');
    assert.equal(props.RedrivePolicy.maxReceiveCount, MAX_RECEIVE_COUNT);
    assert.match(props.RedrivePolicy.deadLetterTargetArn['Fn::GetAtt'][0], /^DeadLetterQueue/);
    const fn = Object.values(sqsDefault.findResources('AWS::Lambda::Function'))[0];
    assert.ok(props.VisibilityTimeout >= 6 * fn.Properties.Timeout, 'visibility timeout >= 6x function timeout');
    for (const q of Object.values(queues)) assert.equal(q.Properties.KmsMasterKeyId, 'alias/aws/sqs');
  });

  it('adds no invoke permission for AWS IoT', () => {
    sqsDefault.resourceCountIs('AWS::Lambda::Permission', 0);
  });
});

describe('direct delivery', () => {
  it('has rules invoke the function, with no event queue nor event source mapping', () => {
    direct.resourceCountIs('AWS::Lambda::EventSourceMapping', 0);
    direct.resourceCountIs('AWS::SQS::Queue', 1); // the dead-letter queue only
    direct.hasResourceProperties('AWS::IoT::TopicRule', {
      TopicRulePayload: { Actions: [{ Lambda: { FunctionArn: Match.anyValue() } }] },
    });
  });

  it('grants lambda:InvokeFunction to iot.amazonaws.com scoped by each rule ARN and the account', () => {
    const permissions = Object.values(direct.findResources('AWS::Lambda::Permission'));
    const rules = Object.keys(direct.findResources('AWS::IoT::TopicRule'));
    assert.equal(permissions.length, rules.length);
    const scopedTo = permissions.map((p) => {
      assert.equal(p.Properties.Action, 'lambda:InvokeFunction');
      assert.equal(p.Properties.Principal, 'iot.amazonaws.com');
      assert.deepEqual(p.Properties.SourceAccount, { Ref: 'AWS::AccountId' });
      const [ruleId, attr] = p.Properties.SourceArn['Fn::GetAtt'];
      assert.equal(attr, 'Arn');
      return ruleId;
    });
    assert.deepEqual(scopedTo.sort(), rules.sort());
  });

  it('still dead-letters failed asynchronous invocations', () => {
    direct.hasResourceProperties('AWS::Lambda::Function', {
      DeadLetterConfig: { TargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DeadLetterQueue'), 'Arn'] } },
    });
  });
});

describe('function', () => {
  it('is a provided.al2023 arm64 bootstrap with memory, timeout, reserved concurrency and JSON logs', () => {
    sqsDefault.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Architectures: ['arm64'],
      Handler: 'bootstrap',
      MemorySize: Match.anyValue(),
      Timeout: FUNCTION_TIMEOUT.toSeconds(),
      ReservedConcurrentExecutions: 3,
      LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: Match.stringLikeRegexp('^FunctionLogGroup') } },
      Environment: {
        Variables: {
          JITP_CONFIG: '/var/task/templates/jitp.toml',
          JITP_POLICY_MODE: 'per-thing',
          JITP_POLICY_PREFIX: 'jitp-',
          JITP_ON_REJECT: 'revoke',
          // maxConcurrency 3 + driftConcurrency 1: both functions spend the account's quotas.
          JITP_QUOTA_INSTANCES: '4',
          JITP_CRL_REFRESH_SECONDS: '300',
          RUST_LOG: 'info',
        },
      },
    });
  });

  it('passes the settings through to the environment', () => {
    const t = synth({ policyMode: 'shared', policyPrefix: 'fleet-', onReject: 'deactivate', rustLog: 'debug' });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          JITP_POLICY_MODE: 'shared',
          JITP_POLICY_PREFIX: 'fleet-',
          JITP_ON_REJECT: 'deactivate',
          RUST_LOG: 'debug',
        }),
      },
    });
    // Each instance paces at 1/(maxConcurrency + driftConcurrency) of the quotas: the share follows both.
    synth({ maxConcurrency: '12', driftConcurrency: '2' }).hasResourceProperties('AWS::Lambda::Function', {
      ReservedConcurrentExecutions: 12,
      Environment: { Variables: Match.objectLike({ JITP_QUOTA_INSTANCES: '14' }) },
    });
    assert.throws(() => synth({ policyMode: 'everything' }), /policyMode must be one of/);
    assert.throws(() => synth({ onReject: 'delete' }), /onReject must be one of/);
    assert.throws(() => synth({ policyPrefix: 'jitp-*' }), /policyPrefix must match/);
  });
});

describe('IAM', () => {
  for (const [name, template] of [
    ['sqs mode', sqsDefault],
    ['direct mode', direct],
  ] as const) {
    it(`${name}: no wildcard action, no iot:*, and Resource "*" only for iot:ListAttachedPolicies`, () => {
      for (const s of statementsOf(template)) {
        for (const action of asList(s.Action)) {
          assert.ok(!action.includes('*'), `wildcard action ${action}`);
        }
        if (asList(s.Resource as unknown[]).includes('*')) {
          assert.deepEqual(asList(s.Action), ['iot:ListAttachedPolicies'], `Resource "*" on ${s.Action}`);
        }
      }
    });

    it(`${name}: grants exactly the IoT actions jitp calls`, () => {
      const granted = new Set(
        statementsOf(template)
          .flatMap((s) => asList(s.Action))
          .filter((a) => a.startsWith('iot:')),
      );
      assert.deepEqual([...granted].sort(), [...IOT_ACTIONS].sort());
    });
  }

  it('scopes each IoT action to the resource types it is authorized on', () => {
    // From infra/iam-actions.json, the one list: each action on exactly its resource types, nothing else.
    const list = loadIamActions();
    const expected: Record<string, string[]> = {};
    for (const [action, types] of Object.entries(list.actions)) {
      expected[action] = types
        .map((t) => (t === '*' ? '*' : `:${list.resources[t].replace('${PolicyPrefix}', 'jitp-')}`))
        .sort();
    }
    assert.equal(expected['iot:ListPrincipalThings'], undefined, 'nothing calls ListPrincipalThings');
    assert.deepEqual(expected['iot:DetachThingPrincipal'], [':cert/*']);
    assert.deepEqual(expected['iot:ListAttachedPolicies'], ['*']);
    // jitp reconcile's own actions are the operator's, never the function's.
    for (const action of ['iot:ListThings', 'iot:ListThingsInThingGroup', 'iot:SetDefaultPolicyVersion']) {
      assert.equal(expected[action], undefined, `${action} is not the function's`);
    }
    const actual: Record<string, string[]> = {};
    for (const s of statementsOf(sqsDefault)) {
      for (const action of asList(s.Action).filter((a) => a.startsWith('iot:'))) {
        actual[action] = [...(actual[action] ?? []), ...asList(s.Resource as unknown[]).map(arnTail)].sort();
      }
    }
    assert.deepEqual(actual, expected);
  });

  it('grants s3:GetObject on exactly the CRL objects, and nothing on S3 without them', () => {
    const s3Statements = (t: Template) =>
      [...statementsOf(t), ...statementsOf(t, true)].filter((s) => asList(s.Action).some((a) => a.startsWith('s3:')));
    assert.deepEqual(s3Statements(sqsDefault), []);
    const t = synth({ crlObjects: 's3://acme-pki/crl/issuing.crl, s3://other.pki/a.crl', crlRefreshSeconds: 60 });
    // One in the provisioning function's role, one in the drift report's: both decide with the same CRLs.
    const statements = s3Statements(t);
    assert.equal(statements.length, 2);
    for (const statement of statements) {
      assert.equal(statement.Sid, 'ReadCrlObjects');
      assert.deepEqual(asList(statement.Action), ['s3:GetObject']);
      assert.deepEqual(asList(statement.Resource as unknown[]).map(arnTail), [':s3:::acme-pki/crl/issuing.crl', ':s3:::other.pki/a.crl']);
    }
    const refreshing = t.findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: Match.objectLike({ JITP_CRL_REFRESH_SECONDS: '60' }) } },
    });
    assert.equal(Object.keys(refreshing).length, 2, 'both functions refresh the S3 CRLs on the same TTL');
  });

  it('refuses a CRL object URI jitp would refuse, and one that would widen the grant', () => {
    for (const bad of [
      'S3://acme-pki/a.crl',
      's3:/acme-pki/a.crl',
      's3://acme-pki',
      's3:///a.crl',
      's3://Acme/a.crl',
      's3://acme..pki/a.crl',
      's3://acme-pki/*',
      's3://acme-pki/a.crl?versionId=1',
      's3://acme-pki/../a.crl',
      's3://acme-pki/crl/',
      's3://acme-pki/${aws:username}',
    ]) {
      assert.throws(() => synth({ crlObjects: bad }), /crlObjects/, bad);
    }
    assert.throws(() => synth({ crlObjects: 's3://a-b/k,s3://a-b/k' }), /duplicate/);
    assert.throws(() => synth({ crlRefreshSeconds: 5 }), /crlRefreshSeconds/);
  });

  it('follows the policy prefix', () => {
    const t = synth({ policyPrefix: 'fleet-' });
    const policyStatement = statementsOf(t).find((s) => s.Sid === 'IotPolicy');
    assert.ok(policyStatement);
    assert.equal(arnTail(policyStatement.Resource), ':policy/fleet-*');
  });

  it('writes the function logs to its own log group only', () => {
    const logStatements = statementsOf(sqsDefault).filter((s) => asList(s.Action).some((a) => a.startsWith('logs:')));
    for (const s of logStatements) {
      for (const r of asList(s.Resource as unknown[])) {
        assert.notEqual(r, '*');
      }
    }
    sqsDefault.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'lambda.amazonaws.com' } })] },
      ManagedPolicyArns: Match.absent(),
    });
  });
});

describe('observability', () => {
  it('keeps every log group for a year', () => {
    const groups = Object.values(sqsDefault.findResources('AWS::Logs::LogGroup'));
    assert.equal(groups.length, 4); // function, rule errors, AWSIotLogsV2, drift function
    for (const g of groups) assert.equal(g.Properties.RetentionInDays, 365);
  });

  it('counts audit outcomes and reasons with metric filters', () => {
    const patterns = Object.values(sqsDefault.findResources('AWS::Logs::MetricFilter')).map(
      (f) => f.Properties.FilterPattern,
    );
    for (const p of [
      '{ $.outcome = "PROVISIONED" }',
      '{ $.outcome = "REJECTED" }',
      '{ $.outcome = "ERROR" }',
      '{ $.outcome = "HELD" }',
      '{ $.reason = "DUPLICATE_THING" }',
      DUPLICATE_CLIENT_ID_PATTERN,
    ]) {
      assert.ok(patterns.includes(p), `metric filter ${p}`);
    }
    assert.match(DUPLICATE_CLIENT_ID_PATTERN, /\$\.reason = "DUPLICATE_CLIENT_ID"/);
  });

  it('alarms on rejections, held devices, audit errors, function errors, DLQ depth, rule errors, duplicate client ids and drift', () => {
    const alarms = Object.values(sqsDefault.findResources('AWS::CloudWatch::Alarm'));
    const metricNames = alarms.map((a) => a.Properties.MetricName).sort();
    assert.deepEqual(metricNames, [
      'ApproximateNumberOfMessagesVisible',
      'Devices',
      'DevicesDrifted',
      'DuplicateClientId',
      'Errors',
      'Errors',
      'ExecutionsFailed',
      'Held',
      'Rejected',
      'RuleActionErrors',
    ]);
    const dlqAlarm = alarms.find((a) => a.Properties.MetricName === 'ApproximateNumberOfMessagesVisible');
    assert.equal(dlqAlarm?.Properties.Namespace, 'AWS/SQS');
    const fnAlarm = alarms.find((a) => a.Properties.Namespace === 'AWS/Lambda');
    assert.equal(fnAlarm?.Properties.MetricName, 'Errors');
  });

  it('notifies the alarm email through SNS only when one is given', () => {
    sqsDefault.resourceCountIs('AWS::SNS::Topic', 1);
    sqsDefault.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
    for (const a of Object.values(sqsDefault.findResources('AWS::CloudWatch::Alarm'))) {
      assert.equal(a.Properties.AlarmActions.length, 1);
    }
    direct.resourceCountIs('AWS::SNS::Topic', 0);
    assert.throws(() => synth({ alarmEmail: 'not an address' }), /alarmEmail/);
  });

  it('configures AWS IoT logging at ERROR with its own role', () => {
    sqsDefault.hasResourceProperties('AWS::IoT::Logging', {
      DefaultLogLevel: 'ERROR',
      AccountId: { Ref: 'AWS::AccountId' },
      RoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^IotLoggingRole'), 'Arn'] },
    });
    sqsDefault.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: 'AWSIotLogsV2', RetentionInDays: 365 });
  });

  it('leaves existing AWS IoT logging alone when asked, still watching AWSIotLogsV2', () => {
    const t = synth({ manageIotLogging: false });
    t.resourceCountIs('AWS::IoT::Logging', 0);
    t.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: 'AWSIotLogsV2',
      FilterPattern: DUPLICATE_CLIENT_ID_PATTERN,
    });
  });
});

describe('checkov suppressions', () => {
  it('carry a reason wherever a check is skipped', () => {
    const template = sqsDefault.toJSON() as { Resources: Record<string, { Metadata?: Record<string, unknown> }> };
    let skips = 0;
    for (const [id, resource] of Object.entries(template.Resources)) {
      const checkov = resource.Metadata?.checkov as { skip: { id: string; comment: string }[] } | undefined;
      for (const skip of checkov?.skip ?? []) {
        skips++;
        assert.match(skip.id, /^CKV_AWS_\d+$/, `${id}: ${skip.id}`);
        assert.ok(skip.comment.length > 40, `${id}: ${skip.id} needs a reason`);
      }
    }
    assert.ok(skips > 0);
  });
});

describe('drift report', () => {
  it('runs jitp-drift under a role that grants exactly drift_actions, all reads', () => {
    const list = loadIamActions();
    const granted: Record<string, string[]> = {};
    for (const s of statementsOf(sqsDefault, true)) {
      for (const action of asList(s.Action)) {
        if (action.startsWith('logs:')) continue;
        granted[action] = [...(granted[action] ?? []), ...asList(s.Resource as unknown[]).map(arnTail)].sort();
      }
    }
    const expected: Record<string, string[]> = {};
    for (const [action, types] of Object.entries(list.drift_actions)) {
      expected[action] = types.map((t) => (t === '*' ? '*' : `:${list.resources[t].replace('${PolicyPrefix}', 'jitp-')}`));
    }
    assert.deepEqual(granted, expected);
    for (const action of Object.keys(granted)) assert.match(action, /^iot:(Describe|List|Get)/);
    sqsDefault.hasResourceProperties('AWS::Lambda::Function', {
      Timeout: 900,
      ReservedConcurrentExecutions: 1,
      Environment: { Variables: Match.objectLike({ JITP_QUOTA_INSTANCES: '4', JITP_POLICY_PREFIX: 'jitp-' }) },
    });
  });

  it('plans 256 shards in a Map of driftConcurrency, started daily by default', () => {
    const machines = Object.values(sqsDefault.findResources('AWS::StepFunctions::StateMachine'));
    assert.equal(machines.length, 1);
    const join = machines[0].Properties.DefinitionString['Fn::Join'] as [string, unknown[]];
    const definition = JSON.parse(join[1].map((p) => (typeof p === 'string' ? p : 'FUNCTION')).join(join[0]));
    assert.deepEqual(definition.States.Shards.Parameters, { shards: 2 });
    assert.equal(definition.States.PlanShards.MaxConcurrency, 1);
    assert.ok(definition.States.PlanShards.ItemProcessor.States.PlanShard.Retry[0].ErrorEquals.includes('jitp.TransientFailure'));
    sqsDefault.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 day)' });
    const t = synth({ driftSchedule: '', driftConcurrency: '3' });
    t.resourceCountIs('AWS::Events::Rule', 0);
    const names = Object.values(t.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties.MetricName);
    assert.ok(!names.includes('Devices'), 'no missing-report alarm without a schedule');
    assert.ok(names.includes('DevicesDrifted'));
    for (const bad of ['rate(2 days)', 'rate(1 minutes)', 'rate(5 minute)', 'rate(1 hours)', 'rate(25 hours)']) {
      assert.throws(() => synth({ driftSchedule: bad }), /driftSchedule/, bad);
    }
    for (const good of ['rate(1 minute)', 'rate(30 minutes)', 'rate(1 hour)', 'rate(12 hours)', 'cron(0 3 * * ? *)']) {
      assert.doesNotThrow(() => resolveConfig({ caCertificateIds: [CA_A], driftSchedule: good }), good);
    }
    assert.throws(() => synth({ driftConcurrency: '5' }), /driftConcurrency/);
  });

  it('alarms on DevicesDrifted above the threshold, to the alarm topic', () => {
    const alarms = Object.values(synth({ alarmEmail: 'ops@example.com', driftThreshold: '10' }).findResources('AWS::CloudWatch::Alarm'));
    const drift = alarms.find((a) => a.Properties.MetricName === 'DevicesDrifted');
    assert.equal(drift?.Properties.Namespace, 'jitp/Drift');
    assert.equal(drift?.Properties.Threshold, 10);
    assert.equal(drift?.Properties.ComparisonOperator, 'GreaterThanThreshold');
    assert.equal(drift?.Properties.AlarmActions.length, 1);
  });
});

describe('connect guard', () => {
  const GUARD = {
    enableGuard: 'true',
    guardDomainName: 'iot.example.com',
    guardCertificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/0123abcd-0000-4000-8000-000000000000',
    crlObjects: 's3://acme-pki/crl/a.crl',
  };
  const guarded = synth(GUARD);

  it('is off by default: no guard function, domain configuration or permission', () => {
    for (const template of [sqsDefault, direct]) {
      template.resourceCountIs('AWS::IoT::DomainConfiguration', 0);
      assert.equal(Object.keys(template.findResources('AWS::IAM::Role')).filter((r) => r.startsWith('GuardFunctionRole')).length, 0);
    }
  });

  it('runs jitp-guard under a role with exactly guard_actions, its log group and the S3 CRLs', () => {
    const policies = guarded.findResources('AWS::IAM::Policy');
    const statements = Object.values(policies)
      .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref.startsWith('GuardFunctionRole')))
      .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
    const iot = statements.flatMap((s) => asList(s.Action)).filter((a) => a.startsWith('iot:'));
    assert.deepEqual(iot.sort(), Object.keys(loadIamActions().guard_actions).sort());
    const others = statements.flatMap((s) => asList(s.Action)).filter((a) => !a.startsWith('iot:'));
    assert.deepEqual([...new Set(others)].sort(), ['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject']);
    guarded.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ JITP_GUARD_MODE: 'report', JITP_CRL_REFRESH_SECONDS: '300' }) },
      Timeout: 5,
    });
  });

  it('points an X.509 domain configuration at it, invocable by AWS IoT of this account for that configuration only', () => {
    guarded.hasResourceProperties('AWS::IoT::DomainConfiguration', {
      DomainName: 'iot.example.com',
      AuthenticationType: 'AWS_X509',
      ServiceType: 'DATA',
      ClientCertificateConfig: { ClientCertificateCallbackArn: Match.anyValue() },
    });
    guarded.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 'iot.amazonaws.com',
      Action: 'lambda:InvokeFunction',
      SourceAccount: { Ref: 'AWS::AccountId' },
      SourceArn: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith([':domainconfiguration/jitp-guard/*'])]) }),
    });
  });

  it('alarms on refusals and on function errors', () => {
    guarded.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'jitp/Guard',
      MetricName: 'Refused',
      Dimensions: [{ Name: 'Stack', Value: 'JitpTest' }],
    });
  });

  it('needs a domain and a certificate, and refuses malformed ones', () => {
    assert.throws(() => synth({ enableGuard: 'true' }), /guardDomainName and guardCertificateArn/);
    assert.throws(() => synth({ ...GUARD, guardDomainName: 'not a domain' }), /guardDomainName/);
    assert.throws(() => synth({ ...GUARD, guardCertificateArn: 'arn:aws:s3:::x' }), /guardCertificateArn/);
    assert.throws(() => synth({ ...GUARD, guardMode: 'audit' }), /guardMode/);
  });
});
