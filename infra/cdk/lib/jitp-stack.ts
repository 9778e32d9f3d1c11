import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArnFormat, Aws, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { JitpConfig } from './config';

// ---------------------------------------------------------------------------------------------------------------
// Sizing. The same numbers are in infra/sam/template.yaml and infra/README.md.
//
// Each device costs the function 6 AWS IoT control-plane calls (DescribeCertificate, CreateThing, CreatePolicy,
// AttachPolicy, AttachThingPrincipal, UpdateCertificate; DescribeCACertificate is cached per process). The
// account-wide quotas that bind first are UpdateCertificate and CreatePolicy at 10 TPS, so the whole account
// activates at most ~10 devices per second, however many functions run. jitp paces its own calls under the
// quotas: each instance paces at 1/JITP_QUOTA_INSTANCES of every quota, and the stack sets JITP_QUOTA_INSTANCES
// to maxConcurrency (which is also the reserved concurrency, so no more instances can run), so that all instances
// together stay under the quotas instead of bouncing off them. More concurrency therefore buys no throughput; too
// much makes events wait: an instance's batch of 10 records needs 10 slots of a 10 TPS operation at 10/N per
// second, 10 x N / 10 s, which must stay well under the retry deadline (20 s): N <= 20 at AWS's default quotas.
// The default 3 makes a batch wait at most ~3 s. With raised quotas, set them in jitp.toml's [quotas] and raise
// maxConcurrency in proportion. A burst of first connections waits in the queue; devices retry their connection
// with backoff until they are activated.
// ---------------------------------------------------------------------------------------------------------------
export const FUNCTION_TIMEOUT = Duration.seconds(60);
export const FUNCTION_MEMORY_MB = 256;
/** Records per invocation; failures are reported per record (ReportBatchItemFailures). */
export const BATCH_SIZE = 10;
/** Receives before a message moves to the dead-letter queue. */
export const MAX_RECEIVE_COUNT = 5;
/** AWS asks for a visibility timeout of at least 6x the function timeout on an SQS event source. */
export const QUEUE_VISIBILITY_TIMEOUT = Duration.seconds(FUNCTION_TIMEOUT.toSeconds() * 6);
export const QUEUE_RETENTION = Duration.days(14);
/** Audit records are kept a year. */
export const LOG_RETENTION = logs.RetentionDays.ONE_YEAR;
/** The log group AWS IoT writes to; fixed by AWS IoT. */
export const IOT_LOG_GROUP_NAME = 'AWSIotLogsV2';

/**
 * infra/iam-actions.json: the AWS IoT actions jitp calls and, per action, the resource types it is granted on. The
 * one list for the Rust code (crates/jitp-aws/tests/iam.rs), this app and the SAM template
 * (infra/tests/check_templates.py). Nothing else of AWS IoT is granted.
 */
export interface IamActions {
  /** Resource type -> the ARN resource part granted, e.g. `cert/*`; `${PolicyPrefix}` is the policy name prefix. */
  readonly resources: Record<string, string>;
  /** Action -> its resource types, or `['*']` for an action that supports no resource-level permission. */
  readonly actions: Record<string, string[]>;
  /** The drift report function's actions (the reads of a plan), in the same form. */
  readonly drift_actions: Record<string, string[]>;
  /** The connect guard function's actions (the registered CAs), in the same form. */
  readonly guard_actions: Record<string, string[]>;
}

export const IAM_ACTIONS_FILE = path.join('infra', 'iam-actions.json');

/** Read and check infra/iam-actions.json. */
export function loadIamActions(repoRoot: string = findRepoRoot()): IamActions {
  const file = path.join(repoRoot, IAM_ACTIONS_FILE);
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as IamActions;
  const sections = [parsed.actions, parsed.drift_actions ?? {}, parsed.guard_actions ?? {}];
  for (const [action, types] of sections.flatMap((section) => Object.entries(section))) {
    if (!action.startsWith('iot:') || action.includes('*')) throw new Error(`${file}: bad action ${action}`);
    if (types.length === 0) throw new Error(`${file}: ${action} has no resource type`);
    for (const t of types) {
      if (t !== '*' && !(t in parsed.resources)) throw new Error(`${file}: ${action}: unknown resource type ${t}`);
    }
    if (types.includes('*') && types.length > 1) throw new Error(`${file}: ${action}: '*' with narrower types`);
  }
  return parsed;
}

/** The AWS IoT actions granted, in the order of infra/iam-actions.json. */
export const IOT_ACTIONS: string[] = Object.keys(loadIamActions().actions);

// ---------------------------------------------------------------------------------------------------------------
// The drift report (infra/README.md, "Drift report"): jitp reconcile --plan on a schedule, by a second function
// (the jitp-drift binary) under a read-only role, run by a state machine: the shards of 2 hex digits (256: the
// things whose jitp_certificate starts with each prefix), each shard's plan in a Map (retried alone), then the
// totals as one CloudWatch Embedded Metric Format line: metrics in DRIFT_NAMESPACE with no PutMetricData.
// A plan costs ~3 calls a device and ListThingPrincipals (10/s) sets its pace; at a quota share of
// 1/(maxConcurrency + driftConcurrency) (3 + 1 by default: 2.5 devices/s) a shard of 2,250 devices fits the 900 s
// timeout, so 256 shards cover ~575,000 devices; a daily 100,000-device report takes ~11 h at that share.
// ---------------------------------------------------------------------------------------------------------------
export const DRIFT_FUNCTION_TIMEOUT = Duration.seconds(900);
/** Hex digits of a shard's prefix: 256 shards, well under a Map's 25,000-event execution history. */
export const DRIFT_SHARD_DIGITS = 2;
/** The namespace the jitp-drift binary writes its metrics to (its default, JITP_DRIFT_NAMESPACE). */
export const DRIFT_NAMESPACE = 'jitp/Drift';
/** An execution gives up after 23 h, before the next daily one starts. */
export const DRIFT_EXECUTION_TIMEOUT_SECONDS = 82800;
/** Errors a drift task retries with backoff: Lambda's transient ones and the function's jitp.TransientFailure. */
export const DRIFT_RETRY = [
  {
    ErrorEquals: [
      'Lambda.ServiceException',
      'Lambda.AWSLambdaException',
      'Lambda.SdkClientException',
      'Lambda.TooManyRequestsException',
      'jitp.TransientFailure',
    ],
    IntervalSeconds: 10,
    MaxAttempts: 6,
    BackoffRate: 2,
    JitterStrategy: 'FULL',
  },
];

/** The drift state machine's definition (the SAM template's is the same; check_templates.py compares them). */
export function driftDefinition(functionArn: string, concurrency: number): Record<string, unknown> {
  return {
    Comment: 'jitp drift report: jitp reconcile --plan shard by shard, the totals as CloudWatch metrics',
    TimeoutSeconds: DRIFT_EXECUTION_TIMEOUT_SECONDS,
    StartAt: 'Shards',
    States: {
      Shards: {
        Type: 'Task',
        Resource: functionArn,
        Parameters: { shards: DRIFT_SHARD_DIGITS },
        Retry: DRIFT_RETRY,
        Next: 'PlanShards',
      },
      PlanShards: {
        Type: 'Map',
        ItemsPath: '$.shards',
        MaxConcurrency: concurrency,
        ItemSelector: { 'shard.$': '$$.Map.Item.Value' },
        ItemProcessor: {
          ProcessorConfig: { Mode: 'INLINE' },
          StartAt: 'PlanShard',
          States: { PlanShard: { Type: 'Task', Resource: functionArn, Retry: DRIFT_RETRY, End: true } },
        },
        Next: 'Summarize',
      },
      Summarize: {
        Type: 'Task',
        Resource: functionArn,
        Parameters: { 'summarize.$': '$' },
        Retry: DRIFT_RETRY,
        End: true,
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The connect guard (infra/README.md, "Connect guard"), only with jitp:enableGuard: jitp-guard answers AWS IoT's
// custom client certificate validation for a domain configuration (X.509, the custom domain and its ACM
// certificate), re-deciding the certificate at every connect with the registered CAs and the CRLs cached. Its
// refusals are EMF lines in GUARD_NAMESPACE (metric Refused, dimension Stack), alarmed.
// ---------------------------------------------------------------------------------------------------------------
/** The namespace the jitp-guard binary writes its metrics to (its default, JITP_GUARD_NAMESPACE). */
export const GUARD_NAMESPACE = 'jitp/Guard';
/** A connect waits for the guard: its answer is a lookup (well under a millisecond warm); 5 s bounds a cold start. */
export const GUARD_FUNCTION_TIMEOUT = Duration.seconds(5);

/** Metric filters on the function's audit records (one JSON line per event, top-level `outcome` and `reason`). */
export const AUDIT_METRICS: { id: string; metricName: string; pattern: string }[] = [
  { id: 'Provisioned', metricName: 'Provisioned', pattern: '{ $.outcome = "PROVISIONED" }' },
  { id: 'AlreadyProvisioned', metricName: 'AlreadyProvisioned', pattern: '{ $.outcome = "ALREADY_PROVISIONED" }' },
  { id: 'Rejected', metricName: 'Rejected', pattern: '{ $.outcome = "REJECTED" }' },
  { id: 'AuditError', metricName: 'Errors', pattern: '{ $.outcome = "ERROR" }' },
  { id: 'Held', metricName: 'Held', pattern: '{ $.outcome = "HELD" }' },
  { id: 'DuplicateThing', metricName: 'DuplicateThing', pattern: '{ $.reason = "DUPLICATE_THING" }' },
];

/**
 * AWS IoT's Disconnect log entry for a client kicked off by another connection with the same client id. The entry
 * carries `reason` and `disconnectReason`; lifecycle events spell the value DUPLICATE_CLIENTID, so match all three.
 */
export const DUPLICATE_CLIENT_ID_PATTERN =
  '{ ($.reason = "DUPLICATE_CLIENT_ID") || ($.disconnectReason = "DUPLICATE_CLIENT_ID") || ($.disconnectReason = "DUPLICATE_CLIENTID") }';

export interface JitpStackProps extends StackProps {
  readonly config: JitpConfig;
  /** Repository root (holds Cargo.toml and templates/). Found from this file's location when omitted. */
  readonly repoRoot?: string;
}

/** The repository root: the nearest ancestor holding the workspace Cargo.toml and templates/. */
export function findRepoRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, 'Cargo.toml')) && fs.existsSync(path.join(dir, 'templates'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no Cargo.toml with a templates/ directory above ${start}`);
    dir = parent;
  }
}

/** Checkov suppressions live beside the resource they apply to, each with its reason. */
function skipCheckov(construct: Construct, skips: { id: string; comment: string }[]): void {
  const resource = construct instanceof CfnResource ? construct : (construct.node.defaultChild as CfnResource);
  resource.addMetadata('checkov', { skip: skips });
}

const LOG_GROUP_KMS_SKIP = {
  id: 'CKV_AWS_158',
  comment:
    'CloudWatch Logs encrypts every log group at rest by default; these hold audit records, undelivered ' +
    'certificate-registered events and AWS IoT logs (certificate ids, thing names, client ids), no secrets, and a ' +
    'customer managed key would add a key policy to run for no gain.',
};

export class JitpStack extends Stack {
  public readonly function: lambda.Function;
  public readonly deadLetterQueue: sqs.Queue;
  public readonly queue?: sqs.Queue;
  public readonly rules: iot.CfnTopicRule[] = [];

  constructor(scope: Construct, id: string, props: JitpStackProps) {
    super(scope, id, props);
    const config = props.config;
    const repoRoot = props.repoRoot ?? findRepoRoot();
    const metricNamespace = `jitp/${this.stackName}`;

    // ---- queues -----------------------------------------------------------------------------------------------
    // Encrypted with the AWS managed key alias/aws/sqs: its key policy lets SQS use it for any principal of the
    // account, so neither the rule's role nor the function's needs KMS permissions.
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS_MANAGED,
      enforceSSL: true,
      retentionPeriod: QUEUE_RETENTION,
    });
    if (config.deliveryMode === 'sqs') {
      this.queue = new sqs.Queue(this, 'EventQueue', {
        encryption: sqs.QueueEncryption.KMS_MANAGED,
        enforceSSL: true,
        retentionPeriod: QUEUE_RETENTION,
        visibilityTimeout: QUEUE_VISIBILITY_TIMEOUT,
        deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
      });
    }

    // ---- function ---------------------------------------------------------------------------------------------
    const functionLogGroup = new logs.LogGroup(this, 'FunctionLogGroup', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    skipCheckov(functionLogGroup, [LOG_GROUP_KMS_SKIP]);

    // Own role, no AWSLambdaBasicExecutionRole: logs go to the one log group below, nowhere else.
    const functionRole = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'jitp provisioning function: the AWS IoT calls it makes, its log group, its queues',
    });
    functionLogGroup.grantWrite(functionRole);
    this.addIotStatements(functionRole, config, repoRoot);
    JitpStack.addCrlObjects(functionRole, config);

    this.function = new RustFunction(this, 'Function', {
      manifestPath: path.join(repoRoot, 'Cargo.toml'),
      binaryName: 'jitp-lambda',
      runtime: 'provided.al2023',
      architecture: lambda.Architecture.ARM_64,
      bundling: {
        architecture: lambda.Architecture.ARM_64,
        // The security team's templates ship beside the binary: $LAMBDA_TASK_ROOT/templates/jitp.toml.
        commandHooks: {
          beforeBundling: () => [],
          afterBundling: (inputDir: string, outputDir: string) => [
            `cp -R "${inputDir}/templates" "${outputDir}/templates"`,
          ],
        },
      },
      description: 'jitp: just-in-time provisioning of devices registered through AWS IoT CA auto-registration',
      memorySize: FUNCTION_MEMORY_MB,
      timeout: FUNCTION_TIMEOUT,
      reservedConcurrentExecutions: config.maxConcurrency,
      role: functionRole,
      logGroup: functionLogGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // Asynchronous invocations (the direct rule -> Lambda path) that still fail after Lambda's retries land
      // here too, so one queue and one alarm cover both delivery modes.
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: 2,
      environment: {
        JITP_CONFIG: '/var/task/templates/jitp.toml',
        JITP_POLICY_MODE: config.policyMode,
        JITP_POLICY_PREFIX: config.policyPrefix,
        JITP_ON_REJECT: config.onReject,
        // Every instance paces at 1/(maxConcurrency + driftConcurrency) of each AWS IoT quota (see Sizing).
        JITP_QUOTA_INSTANCES: String(config.maxConcurrency + config.driftConcurrency),
        JITP_CRL_REFRESH_SECONDS: String(config.crlRefreshSeconds),
        RUST_LOG: config.rustLog,
      },
    });
    // CDK makes the function depend on its role both through GetAtt and DependsOn; the second is redundant.
    (this.function.node.defaultChild as CfnResource).addMetadata('cfn-lint', {
      config: { ignore_checks: ['W3005'] },
    });
    skipCheckov(this.function, [
      {
        id: 'CKV_AWS_117',
        comment:
          'The function only calls the AWS IoT control plane and CloudWatch Logs and reaches no private resource; ' +
          'a VPC would need a NAT gateway or interface endpoints and add no isolation.',
      },
      {
        id: 'CKV_AWS_173',
        comment:
          'The environment holds no secrets (a file path, modes, a policy name prefix, a log filter); Lambda ' +
          'encrypts it at rest with an AWS managed key already.',
      },
    ]);

    // ---- delivery: IoT rule per CA -> SQS -> function, or IoT rule -> function --------------------------------
    const ruleErrorLogGroup = new logs.LogGroup(this, 'RuleErrorLogGroup', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    skipCheckov(ruleErrorLogGroup, [LOG_GROUP_KMS_SKIP]);
    const ruleErrorRole = new iam.Role(this, 'RuleErrorActionRole', {
      assumedBy: iotServicePrincipal(),
      description: 'jitp topic rules: error action writes to the rule error log group',
    });
    ruleErrorRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteRuleErrors',
        actions: ['logs:CreateLogStream', 'logs:DescribeLogStreams', 'logs:PutLogEvents'],
        resources: [ruleErrorLogGroup.logGroupArn],
      }),
    );

    let ruleQueueRole: iam.Role | undefined;
    if (this.queue) {
      ruleQueueRole = new iam.Role(this, 'RuleQueueRole', {
        assumedBy: iotServicePrincipal(),
        description: 'jitp topic rules: send certificate-registered events to the event queue',
      });
      ruleQueueRole.addToPolicy(
        new iam.PolicyStatement({
          sid: 'SendEvents',
          actions: ['sqs:SendMessage'],
          resources: [this.queue.queueArn],
        }),
      );
      this.function.addEventSource(
        new SqsEventSource(this.queue, {
          batchSize: BATCH_SIZE,
          reportBatchItemFailures: true,
          maxConcurrency: config.maxConcurrency,
        }),
      );
    }

    for (const caId of config.caCertificateIds) {
      const topic = `$aws/events/certificates/registered/${caId}`;
      const action: iot.CfnTopicRule.ActionProperty =
        this.queue && ruleQueueRole
          ? { sqs: { queueUrl: this.queue.queueUrl, roleArn: ruleQueueRole.roleArn, useBase64: false } }
          : { lambda: { functionArn: this.function.functionArn } };
      const rule = new iot.CfnTopicRule(this, `CertificateRegisteredRule${caId.slice(0, 12)}`, {
        topicRulePayload: {
          description: `jitp: certificates registered under CA ${caId}`,
          awsIotSqlVersion: '2016-03-23',
          sql: `SELECT * FROM '${topic}'`,
          ruleDisabled: false,
          actions: [action],
          errorAction: {
            cloudwatchLogs: { logGroupName: ruleErrorLogGroup.logGroupName, roleArn: ruleErrorRole.roleArn },
          },
        },
      });
      this.rules.push(rule);
      if (config.deliveryMode === 'direct') {
        // Without this permission AWS IoT cannot invoke the function, and nothing fails loudly: the rule's
        // error action (below, alarmed) is the only trace. Scoped to this rule in this account.
        this.function.addPermission(`InvokeFromRule${caId.slice(0, 12)}`, {
          principal: new iam.ServicePrincipal('iot.amazonaws.com'),
          action: 'lambda:InvokeFunction',
          sourceArn: rule.attrArn,
          sourceAccount: Aws.ACCOUNT_ID,
        });
      }
    }

    // ---- AWS IoT logging ---------------------------------------------------------------------------------------
    let iotLogGroupName: string = IOT_LOG_GROUP_NAME;
    if (config.manageIotLogging) {
      const iotLogGroup = new logs.LogGroup(this, 'IotLogGroup', {
        logGroupName: IOT_LOG_GROUP_NAME,
        retention: LOG_RETENTION,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      skipCheckov(iotLogGroup, [LOG_GROUP_KMS_SKIP]);
      iotLogGroupName = iotLogGroup.logGroupName;
      const iotLoggingRole = new iam.Role(this, 'IotLoggingRole', {
        assumedBy: iotServicePrincipal(),
        description: 'AWS IoT logging to AWSIotLogsV2',
      });
      const iotLoggingPolicy = new iam.Policy(this, 'IotLoggingPolicy', {
        roles: [iotLoggingRole],
        statements: [
          new iam.PolicyStatement({
            sid: 'WriteIotLogs',
            actions: [
              'logs:CreateLogGroup',
              'logs:CreateLogStream',
              'logs:DescribeLogStreams',
              'logs:PutLogEvents',
              'logs:PutMetricFilter',
              'logs:PutRetentionPolicy',
            ],
            // The group itself (CreateLogGroup, PutMetricFilter, PutRetentionPolicy) and its streams.
            resources: [
              this.formatArn({
                service: 'logs',
                resource: 'log-group',
                resourceName: IOT_LOG_GROUP_NAME,
                arnFormat: ArnFormat.COLON_RESOURCE_NAME,
              }),
              iotLogGroup.logGroupArn,
            ],
          }),
        ],
      });
      const logging = new iot.CfnLogging(this, 'IotLogging', {
        accountId: Aws.ACCOUNT_ID,
        defaultLogLevel: config.iotLogLevel,
        roleArn: iotLoggingRole.roleArn,
      });
      // The role's policy must exist before AWS IoT first uses it.
      logging.node.addDependency(iotLoggingPolicy);
    }

    // ---- metrics and alarms ------------------------------------------------------------------------------------
    const metrics: Record<string, cloudwatch.Metric> = {};
    for (const m of AUDIT_METRICS) {
      const filter = new logs.MetricFilter(this, `${m.id}MetricFilter`, {
        logGroup: functionLogGroup,
        filterPattern: logs.FilterPattern.literal(m.pattern),
        metricNamespace,
        metricName: m.metricName,
        metricValue: '1',
        defaultValue: 0,
      });
      metrics[m.id] = filter.metric({ statistic: 'Sum', period: Duration.minutes(5) });
    }
    const ruleErrorFilter = new logs.MetricFilter(this, 'RuleErrorMetricFilter', {
      logGroup: ruleErrorLogGroup,
      filterPattern: logs.FilterPattern.allEvents(),
      metricNamespace,
      metricName: 'RuleActionErrors',
      metricValue: '1',
      defaultValue: 0,
    });
    const duplicateClientIdFilter = new logs.CfnMetricFilter(this, 'DuplicateClientIdMetricFilter', {
      logGroupName: iotLogGroupName,
      filterPattern: DUPLICATE_CLIENT_ID_PATTERN,
      metricTransformations: [
        { metricNamespace, metricName: 'DuplicateClientId', metricValue: '1', defaultValue: 0 },
      ],
    });
    const duplicateClientIdMetric = new cloudwatch.Metric({
      namespace: metricNamespace,
      metricName: 'DuplicateClientId',
      statistic: 'Sum',
      period: Duration.minutes(5),
    });

    const alarms: cloudwatch.Alarm[] = [
      new cloudwatch.Alarm(this, 'RejectionsAlarm', {
        alarmDescription:
          'jitp rejected a certificate (outcome REJECTED). The audit record in the function log group names the ' +
          'certificate and the reason code; see infra/README.md, "Reading the alarms".',
        metric: metrics.Rejected,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'AuditErrorsAlarm', {
        alarmDescription:
          'jitp could not finish provisioning (outcome ERROR); the event is retried and then dead-lettered.',
        metric: metrics.AuditError,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'HeldAlarm', {
        alarmDescription:
          'An operator mistake (a policy template, a CA, an unmanaged thing) holds devices PENDING (outcome HELD): ' +
          'fix it, then redrive the dead-lettered events. The audit record names the reason code.',
        metric: metrics.Held,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'FunctionErrorsAlarm', {
        alarmDescription: 'The jitp function failed invocations (crash, timeout, or an error for the whole batch).',
        metric: this.function.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'DeadLetterQueueAlarm', {
        alarmDescription:
          'Events that jitp failed to process after all retries are waiting in the dead-letter queue.',
        metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          statistic: 'Maximum',
          period: Duration.minutes(5),
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'RuleErrorsAlarm', {
        alarmDescription:
          'An AWS IoT topic rule could not deliver a certificate-registered event (missing permission, queue or ' +
          'function unavailable). The rule error log group holds the failed event.',
        metric: ruleErrorFilter.metric({ statistic: 'Sum', period: Duration.minutes(5) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'DuplicateClientIdAlarm', {
        alarmDescription:
          'AWS IoT keeps disconnecting clients because another connection uses the same client id: two devices ' +
          'share a certificate or thing name, or a device does not use its thing name as client id.',
        metric: duplicateClientIdMetric,
        threshold: 5,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    alarms[alarms.length - 1].node.addDependency(duplicateClientIdFilter);
    alarms.push(...this.addDriftReport(config, repoRoot));
    if (config.enableGuard) alarms.push(...this.addGuard(config, repoRoot));

    if (config.alarmEmail) {
      const topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'jitp alarms', enforceSSL: true });
      skipCheckov(topic, [
        {
          id: 'CKV_AWS_26',
          comment:
            'CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key alias/aws/sns, and ' +
            'alarm notifications carry no secrets (alarm name, state, metric value).',
        },
      ]);
      topic.addSubscription(new subs.EmailSubscription(config.alarmEmail));
      for (const alarm of alarms) {
        alarm.addAlarmAction(new cwActions.SnsAction(topic));
        alarm.addOkAction(new cwActions.SnsAction(topic));
      }
    }

    // ---- outputs -----------------------------------------------------------------------------------------------
    new CfnOutput(this, 'FunctionName', { value: this.function.functionName });
    new CfnOutput(this, 'FunctionLogGroupName', { value: functionLogGroup.logGroupName });
    new CfnOutput(this, 'RuleErrorLogGroupName', { value: ruleErrorLogGroup.logGroupName });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    if (this.queue) new CfnOutput(this, 'EventQueueUrl', { value: this.queue.queueUrl });
  }

  /** The S3 CRLs jitp.toml lists: GetObject on exactly those objects, nothing when there are none. */
  private static addCrlObjects(role: iam.Role, config: JitpConfig): void {
    if (config.crlObjects.length === 0) return;
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadCrlObjects',
        actions: ['s3:GetObject'],
        resources: config.crlObjects.map((o) => `arn:${Aws.PARTITION}:s3:::${o.bucket}/${o.key}`),
      }),
    );
  }

  /**
   * The drift report: its function (jitp-drift, read-only role), its state machine, its schedule; returns its
   * alarms (on drift, on a failed execution, on a missing report when scheduled).
   */
  private addDriftReport(config: JitpConfig, repoRoot: string): cloudwatch.Alarm[] {
    const logGroup = new logs.LogGroup(this, 'DriftFunctionLogGroup', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    skipCheckov(logGroup, [LOG_GROUP_KMS_SKIP]);
    const role = new iam.Role(this, 'DriftFunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'jitp drift report function: read-only, the AWS IoT calls a plan makes, its log group',
    });
    logGroup.grantWrite(role);
    this.addIotStatements(role, config, repoRoot, 'drift_actions');
    // The drift report decides with the same CRLs, so it reads the same objects.
    JitpStack.addCrlObjects(role, config);

    const fn = new RustFunction(this, 'DriftFunction', {
      manifestPath: path.join(repoRoot, 'Cargo.toml'),
      binaryName: 'jitp-drift',
      runtime: 'provided.al2023',
      architecture: lambda.Architecture.ARM_64,
      bundling: {
        architecture: lambda.Architecture.ARM_64,
        commandHooks: {
          beforeBundling: () => [],
          afterBundling: (inputDir: string, outputDir: string) => [
            `cp -R "${inputDir}/templates" "${outputDir}/templates"`,
          ],
        },
      },
      description: 'jitp drift report: jitp reconcile --plan, one shard per invocation, totals as CloudWatch metrics',
      memorySize: FUNCTION_MEMORY_MB,
      timeout: DRIFT_FUNCTION_TIMEOUT,
      reservedConcurrentExecutions: config.driftConcurrency,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: {
        JITP_CONFIG: '/var/task/templates/jitp.toml',
        JITP_POLICY_MODE: config.policyMode,
        JITP_POLICY_PREFIX: config.policyPrefix,
        // The provisioning function's share: both count both functions' concurrency (see Sizing).
        JITP_QUOTA_INSTANCES: String(config.maxConcurrency + config.driftConcurrency),
        JITP_DRIFT_STACK: this.stackName,
        JITP_CRL_REFRESH_SECONDS: String(config.crlRefreshSeconds),
        RUST_LOG: config.rustLog,
      },
    });
    (fn.node.defaultChild as CfnResource).addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
    skipCheckov(fn, [
      {
        id: 'CKV_AWS_117',
        comment:
          'The function only calls the AWS IoT control plane and CloudWatch Logs and reaches no private resource; ' +
          'a VPC would need a NAT gateway or interface endpoints and add no isolation.',
      },
      {
        id: 'CKV_AWS_173',
        comment:
          'The environment holds no secrets (a file path, a mode, a policy name prefix, a stack name, a log ' +
          'filter); Lambda encrypts it at rest with an AWS managed key already.',
      },
      {
        id: 'CKV_AWS_116',
        comment:
          'The state machine invokes the function synchronously and retries a failed shard itself; there is no ' +
          'asynchronous invocation whose event a dead-letter queue could keep.',
      },
    ]);

    const machineRole = new iam.Role(this, 'DriftStateMachineRole', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
      }),
      description: 'jitp drift report state machine: invokes the drift function',
    });
    machineRole.addToPolicy(
      new iam.PolicyStatement({ sid: 'InvokeDriftFunction', actions: ['lambda:InvokeFunction'], resources: [fn.functionArn] }),
    );
    const machine = new sfn.StateMachine(this, 'DriftStateMachine', {
      definitionBody: sfn.DefinitionBody.fromString(JSON.stringify(driftDefinition(fn.functionArn, config.driftConcurrency))),
      role: machineRole,
    });
    // As for the functions: CDK adds a DependsOn on the role beside the GetAtt.
    (machine.node.defaultChild as CfnResource).addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
    skipCheckov(machine, [
      {
        id: 'CKV_AWS_284',
        comment:
          "X-Ray tracing would need xray:PutTraceSegments on Resource '*' in the role; the execution history (kept " +
          "90 days) and the function's log group already show each shard's invocation, duration and error.",
      },
      {
        id: 'CKV_AWS_285',
        comment:
          "Step Functions keeps every execution's history for 90 days; logging it to CloudWatch Logs too would need " +
          "logs delivery actions on Resource '*' in the role and add nothing the history and the log group do not show.",
      },
    ]);
    if (config.driftSchedule !== '') {
      // Its own role, as SAM's DriftScheduleRole: assumable by EventBridge for this account only (the target's
      // default role has no aws:SourceAccount condition), allowed to start this state machine only.
      const scheduleRole = new iam.Role(this, 'DriftScheduleRole', {
        assumedBy: new iam.ServicePrincipal('events.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
        }),
        description: 'jitp drift report schedule: starts the state machine',
      });
      machine.grantStartExecution(scheduleRole);
      new events.Rule(this, 'DriftScheduleRule', {
        description: 'jitp drift report: start the state machine',
        schedule: events.Schedule.expression(config.driftSchedule),
        targets: [new eventsTargets.SfnStateMachine(machine, { role: scheduleRole })],
      });
    }

    const driftMetric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: DRIFT_NAMESPACE,
        metricName,
        dimensionsMap: { Stack: this.stackName },
        statistic,
        period: Duration.days(1),
      });
    const alarms = [
      new cloudwatch.Alarm(this, 'DriftAlarm', {
        alarmDescription:
          'The drift report found devices today\'s configuration would change (DevicesDrifted above the threshold): ' +
          'run jitp reconcile --plan to see which and why, then --apply. See templates/README.md, "Drift".',
        metric: driftMetric('DevicesDrifted', 'Maximum'),
        threshold: config.driftThreshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'DriftReportFailedAlarm', {
        alarmDescription:
          'A drift report execution failed (a shard kept failing after its retries, or the summary refused the ' +
          "shards): the state machine's execution history names the state and the error.",
        metric: machine.metricFailed({ statistic: 'Sum', period: Duration.hours(1) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    if (config.driftSchedule !== '') {
      alarms.push(
        new cloudwatch.Alarm(this, 'DriftReportMissingAlarm', {
          alarmDescription:
            'No drift report for two days although one is scheduled (failed, timed out, or not started): drift ' +
            "would go unnoticed. The state machine's executions show why.",
          metric: driftMetric('Devices', 'SampleCount'),
          threshold: 1,
          evaluationPeriods: 2,
          comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        }),
      );
    }
    new CfnOutput(this, 'DriftStateMachineArn', { value: machine.stateMachineArn });
    new CfnOutput(this, 'DriftFunctionLogGroupName', { value: logGroup.logGroupName });
    return alarms;
  }

  /**
   * The connect guard: its function (jitp-guard; a role with the registered CAs, the S3 CRLs and its log group),
   * the invoke permission for AWS IoT scoped to this account's domain configuration, the domain configuration;
   * returns its alarms (refusals, function errors).
   */
  private addGuard(config: JitpConfig, repoRoot: string): cloudwatch.Alarm[] {
    const logGroup = new logs.LogGroup(this, 'GuardFunctionLogGroup', {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    skipCheckov(logGroup, [LOG_GROUP_KMS_SKIP]);
    const role = new iam.Role(this, 'GuardFunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'jitp connect guard function: the registered CAs, the S3 CRLs, its log group',
    });
    logGroup.grantWrite(role);
    this.addIotStatements(role, config, repoRoot, 'guard_actions');
    // The guard decides with the same CRLs as the provisioning function: the same objects.
    JitpStack.addCrlObjects(role, config);

    const fn = new RustFunction(this, 'GuardFunction', {
      manifestPath: path.join(repoRoot, 'Cargo.toml'),
      binaryName: 'jitp-guard',
      runtime: 'provided.al2023',
      architecture: lambda.Architecture.ARM_64,
      bundling: {
        architecture: lambda.Architecture.ARM_64,
        commandHooks: {
          beforeBundling: () => [],
          afterBundling: (inputDir: string, outputDir: string) => [
            `cp -R "${inputDir}/templates" "${outputDir}/templates"`,
          ],
        },
      },
      description: 'jitp connect guard: AWS IoT custom client certificate validation, the provisioning decision at every connect',
      memorySize: FUNCTION_MEMORY_MB,
      timeout: GUARD_FUNCTION_TIMEOUT,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: {
        JITP_CONFIG: '/var/task/templates/jitp.toml',
        JITP_GUARD_MODE: config.guardMode,
        JITP_GUARD_STACK: this.stackName,
        JITP_CRL_REFRESH_SECONDS: String(config.crlRefreshSeconds),
        RUST_LOG: config.rustLog,
      },
    });
    (fn.node.defaultChild as CfnResource).addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
    skipCheckov(fn, [
      {
        id: 'CKV_AWS_117',
        comment:
          "The function calls only AWS IoT's control plane (the registered CAs), S3 (the CRLs) and CloudWatch Logs " +
          'and reaches no private resource; a VPC would need a NAT gateway or interface endpoints and add no isolation.',
      },
      {
        id: 'CKV_AWS_173',
        comment:
          'The environment holds no secrets (a file path, a mode, a stack name, a period, a log filter); Lambda ' +
          'encrypts it at rest with an AWS managed key already.',
      },
      {
        id: 'CKV_AWS_116',
        comment:
          'AWS IoT invokes the function synchronously for each connect and takes its answer; there is no ' +
          'asynchronous invocation whose event a dead-letter queue could keep.',
      },
      {
        id: 'CKV_AWS_115',
        comment:
          "Every connect to the guarded domain is an invocation: reserved concurrency would cap the fleet's " +
          "connects per second and refuse the rest; the account's concurrency is the bound, watched by the errors alarm.",
      },
    ]);
    // AWS IoT may invoke it only for this account's domain configuration of that name (its ARN ends in an id AWS
    // IoT assigns, hence the trailing wildcard).
    const permission = new lambda.CfnPermission(this, 'GuardInvokePermission', {
      functionName: fn.functionArn,
      action: 'lambda:InvokeFunction',
      principal: 'iot.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
      sourceArn: `arn:${Aws.PARTITION}:iot:${Aws.REGION}:${Aws.ACCOUNT_ID}:domainconfiguration/${config.guardDomainConfigurationName}/*`,
    });
    const domain = new iot.CfnDomainConfiguration(this, 'GuardDomainConfiguration', {
      domainConfigurationName: config.guardDomainConfigurationName,
      domainName: config.guardDomainName,
      serverCertificateArns: config.guardCertificateArn ? [config.guardCertificateArn] : undefined,
      serviceType: 'DATA',
      authenticationType: 'AWS_X509',
      applicationProtocol: 'DEFAULT',
      clientCertificateConfig: { clientCertificateCallbackArn: fn.functionArn },
      domainConfigurationStatus: 'ENABLED',
    });
    domain.addResourceDependency(permission);

    const alarms = [
      new cloudwatch.Alarm(this, 'GuardRefusalsAlarm', {
        alarmDescription:
          'The connect guard refused connects (or, in report mode, would have). Each refusal is a line in the ' +
          "guard's log group (eventType jitp.guard) naming the certificate, the reason code and the CRL or deny-list entry.",
        metric: new cloudwatch.Metric({
          namespace: GUARD_NAMESPACE,
          metricName: 'Refused',
          dimensionsMap: { Stack: this.stackName },
          statistic: 'Sum',
          period: Duration.minutes(5),
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'GuardErrorsAlarm', {
        alarmDescription:
          'The connect guard failed invocations (init error, crash, timeout, throttling): connects to the guarded ' +
          'domain fail while it does. See infra/README.md, "Connect guard".',
        metric: fn.metricErrors({ statistic: 'Sum', period: Duration.minutes(1) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    new CfnOutput(this, 'GuardFunctionName', { value: fn.functionName });
    new CfnOutput(this, 'GuardFunctionLogGroupName', { value: logGroup.logGroupName });
    new CfnOutput(this, 'GuardDomainConfigurationName', { value: domain.ref });
    return alarms;
  }

  /**
   * The AWS IoT part of the function's role, built from infra/iam-actions.json: one statement per set of resource
   * types, each action on exactly the types listed for it (the Service Authorization Reference's, narrowest first;
   * infra/tests/check_templates.py checks both templates against the copy of it that the pinned cfn-lint ships).
   */
  private addIotStatements(
    role: iam.Role,
    config: JitpConfig,
    repoRoot: string,
    section: 'actions' | 'drift_actions' | 'guard_actions' = 'actions',
  ): void {
    const list = loadIamActions(repoRoot);
    const arn = (resource: string) => `arn:${Aws.PARTITION}:iot:${Aws.REGION}:${Aws.ACCOUNT_ID}:${resource}`;
    const groups = new Map<string, { types: string[]; actions: string[] }>();
    for (const [action, types] of Object.entries(list[section])) {
      const key = types.join(',');
      const group = groups.get(key) ?? { types, actions: [] };
      group.actions.push(action);
      groups.set(key, group);
    }
    for (const { types, actions } of groups.values()) {
      const sid = types[0] === '*' ? 'IotAnyResource' : `Iot${types.map(capitalize).join('And')}`;
      const resources =
        types[0] === '*'
          ? // Only for actions that support no resource-level permission: an ARN would never match them.
            ['*']
          : types.map((t) => arn(list.resources[t].replace('${PolicyPrefix}', config.policyPrefix)));
      role.addToPolicy(new iam.PolicyStatement({ sid, actions, resources }));
    }
  }
}

function capitalize(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** AWS IoT as a principal, limited to this account's AWS IoT (confused-deputy protection). */
function iotServicePrincipal(): iam.IPrincipal {
  return new iam.ServicePrincipal('iot.amazonaws.com').withConditions({
    StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
    ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:iot:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
  });
}
