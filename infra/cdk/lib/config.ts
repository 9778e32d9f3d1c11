// Deployment settings for the jitp stack, read from CDK context (cdk.json or `-c key=value`) and validated
// before anything is synthesized, so a typo fails `cdk synth` instead of a deployment.
//
// The same settings are the Parameters of the SAM template (infra/sam/template.yaml); keep the two in step.

/** How the certificate-registered events reach the function. */
export type DeliveryMode = 'sqs' | 'direct';
/** One AWS IoT policy per thing, or one policy shared by every thing of a profile. */
export type PolicyMode = 'per-thing' | 'shared';
/** What jitp does to a certificate it rejects. */
export type OnReject = 'revoke' | 'deactivate' | 'leave';
/** The connect guard's mode: report lets every connect through and records refusals; enforce refuses them. */
export type GuardMode = 'report' | 'enforce';
/** AWS IoT's account-wide log level (AWS::IoT::Logging DefaultLogLevel). */
export type IotLogLevel = 'ERROR' | 'WARN' | 'INFO' | 'DEBUG' | 'DISABLED';

export interface JitpConfig {
  /** Ids of the CA certificates registered with auto-registration on: one topic rule each. */
  readonly caCertificateIds: string[];
  readonly policyMode: PolicyMode;
  /** Prefix of the AWS IoT policies jitp creates; the function may only touch policies with this prefix. */
  readonly policyPrefix: string;
  readonly onReject: OnReject;
  /** Email address subscribed to the alarm topic; no topic is created without it. */
  readonly alarmEmail?: string;
  readonly deliveryMode: DeliveryMode;
  /**
   * Create AWS::IoT::Logging (account-wide, one per account and Region), its role and the AWSIotLogsV2 log group.
   * Set to false when the account already has AWS IoT logging: the DUPLICATE_CLIENT_ID filter then attaches to the
   * existing AWSIotLogsV2 log group.
   */
  readonly manageIotLogging: boolean;
  readonly iotLogLevel: IotLogLevel;
  /** Upper bound on concurrent invocations: the SQS event source's maximum concurrency and the reserved concurrency. */
  readonly maxConcurrency: number;
  /** RUST_LOG for the function. */
  readonly rustLog: string;
  /**
   * When the drift report runs (EventBridge schedule expression): a rate() at most a day apart or a cron(); '' for
   * no schedule (the state machine is still deployed, to start by hand) and no missing-report alarm.
   */
  readonly driftSchedule: string;
  /** Shards the drift report plans at once: its Map's MaxConcurrency and its function's reserved concurrency. */
  readonly driftConcurrency: number;
  /** The drift alarm fires when more devices than this have drift. */
  readonly driftThreshold: number;
  /**
   * The S3 CRLs jitp.toml lists (`crl = ["s3://bucket/key"]`): the function may s3:GetObject exactly these objects
   * (nothing when empty).
   */
  readonly crlObjects: S3Object[];
  /** JITP_CRL_REFRESH_SECONDS: how often the function fetches the S3 CRLs again. */
  readonly crlRefreshSeconds: number;
  /**
   * The connect guard (jitp-guard: AWS IoT custom client certificate validation on a custom domain). Off by
   * default: nothing of it is created.
   */
  readonly enableGuard: boolean;
  /** JITP_GUARD_MODE; report by default, for a rollout (infra/README.md, "Connect guard"). */
  readonly guardMode: GuardMode;
  /** The custom domain devices connect to with the guard on (required with it). */
  readonly guardDomainName?: string;
  /** The ACM certificate serving guardDomainName (required with the guard). */
  readonly guardCertificateArn?: string;
  /** The domain configuration's name (the invoke permission names it). */
  readonly guardDomainConfigurationName: string;
}

/** An S3 object named by an s3://bucket/key URI. */
export interface S3Object {
  readonly bucket: string;
  readonly key: string;
}

export const CA_CERTIFICATE_ID = /^[0-9a-f]{64}$/;
// AWS IoT policy names are [\w+=,.@-]{1,128}; the prefix leaves room for the rest of the name and can hold no
// wildcard, so `policy/<prefix>*` in the function's role stays narrow.
export const POLICY_PREFIX = /^[A-Za-z0-9_+=,.@-]{1,64}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const RUST_LOG = /^[A-Za-z0-9_:=,.-]{1,256}$/;
// The SAM template's DriftSchedule AllowedPattern: a rate at most a day apart (the missing-report alarm waits two
// days), its unit singular for 1 and plural otherwise as EventBridge requires, or a cron.
export const DRIFT_SCHEDULE = /^$|^rate\((1 (day|hour|minute)|([2-9]|[1-9][0-9]+) minutes|([2-9]|1[0-9]|2[0-4]) hours)\)$|^cron\([^()]+\)$/;
// The rules jitp applies to a CRL's s3:// URI (jitp_core::ids::S3Object), minus the comma that separates a list: a
// general purpose bucket name, a key of S3's safe characters without a wildcard, so the grant names the object only.
const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const S3_KEY = /^[A-Za-z0-9!_.'()/=+@:-]{1,1024}$/;
// The SAM template's GuardDomainName, GuardCertificateArn and GuardDomainConfigurationName AllowedPatterns.
export const GUARD_DOMAIN_NAME = /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?[.])+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
export const ACM_CERTIFICATE_ARN = /^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate\/[A-Za-z0-9-]+$/;
export const DOMAIN_CONFIGURATION_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

export const DEFAULTS = {
  policyMode: 'per-thing' as PolicyMode,
  policyPrefix: 'jitp-',
  onReject: 'revoke' as OnReject,
  deliveryMode: 'sqs' as DeliveryMode,
  manageIotLogging: true,
  iotLogLevel: 'ERROR' as IotLogLevel,
  maxConcurrency: 3,
  rustLog: 'info',
  driftSchedule: 'rate(1 day)',
  driftConcurrency: 1,
  driftThreshold: 0,
  crlRefreshSeconds: 300,
  enableGuard: false,
  guardMode: 'report' as GuardMode,
  guardDomainConfigurationName: 'jitp-guard',
};

/** Parse `s3://bucket/key` as jitp does (the same URI must appear in jitp.toml). */
export function parseS3Uri(uri: string): S3Object {
  const fail = (why: string) => new Error(`crlObjects: '${uri}' ${why}`);
  if (!uri.startsWith('s3://')) throw fail('is not an s3://bucket/key URI (lowercase scheme)');
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  if (slash < 0) throw fail('has no key');
  const bucket = rest.slice(0, slash);
  const key = rest.slice(slash + 1);
  if (!S3_BUCKET.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw fail(`has an invalid bucket name '${bucket}' (3 to 63 of [a-z0-9.-], a letter or digit at each end)`);
  }
  if (!S3_KEY.test(key) || key.endsWith('/') || key.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw fail(`has an invalid key '${key}' (1 to 1024 of [A-Za-z0-9!_.'()/=+@:-], no empty, . or .. segment)`);
  }
  return { bucket, key };
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`${name} must be one of ${allowed.join(', ')}; got '${value}'`);
  }
  return value as T;
}

function asList(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.map((v) => String(v).trim()).filter((v) => v !== '');
  return String(value)
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function asBool(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null || value === '') return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new Error(`${name} must be true or false; got '${String(value)}'`);
}

/** Validate settings given as plain values (from context, tests, or another app). */
export function resolveConfig(input: Partial<Record<keyof JitpConfig, unknown>>): JitpConfig {
  const caCertificateIds = asList(input.caCertificateIds);
  if (caCertificateIds.length === 0) {
    throw new Error(
      'caCertificateIds is required: the ids of the CA certificates registered with --allow-auto-registration ' +
        '(cdk deploy -c jitp:caCertificateIds=<id>[,<id>...])',
    );
  }
  for (const id of caCertificateIds) {
    if (!CA_CERTIFICATE_ID.test(id)) {
      throw new Error(`caCertificateIds: '${id}' is not a CA certificate id (64 lowercase hex characters)`);
    }
  }
  if (new Set(caCertificateIds).size !== caCertificateIds.length) {
    throw new Error('caCertificateIds: duplicate id');
  }

  const policyPrefix = input.policyPrefix === undefined ? DEFAULTS.policyPrefix : String(input.policyPrefix);
  if (!POLICY_PREFIX.test(policyPrefix)) {
    throw new Error(`policyPrefix must match ${POLICY_PREFIX}; got '${policyPrefix}'`);
  }

  const alarmEmail =
    input.alarmEmail === undefined || input.alarmEmail === null || input.alarmEmail === ''
      ? undefined
      : String(input.alarmEmail);
  if (alarmEmail !== undefined && !EMAIL.test(alarmEmail)) {
    throw new Error(`alarmEmail is not an email address: '${alarmEmail}'`);
  }

  const maxConcurrency = input.maxConcurrency === undefined ? DEFAULTS.maxConcurrency : Number(input.maxConcurrency);
  // 2 is the smallest maximum concurrency an SQS event source mapping accepts.
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 2 || maxConcurrency > 100) {
    throw new Error(`maxConcurrency must be an integer from 2 to 100; got '${String(input.maxConcurrency)}'`);
  }

  const rustLog = input.rustLog === undefined ? DEFAULTS.rustLog : String(input.rustLog);
  if (!RUST_LOG.test(rustLog)) {
    throw new Error(`rustLog is not a RUST_LOG filter: '${rustLog}'`);
  }

  const driftSchedule = input.driftSchedule === undefined ? DEFAULTS.driftSchedule : String(input.driftSchedule);
  if (!DRIFT_SCHEDULE.test(driftSchedule)) {
    throw new Error(
      `driftSchedule must be '', rate(N minutes), rate(N hours) up to 24, rate(1 day) or cron(...); got '${driftSchedule}'`,
    );
  }
  const driftConcurrency =
    input.driftConcurrency === undefined ? DEFAULTS.driftConcurrency : Number(input.driftConcurrency);
  if (!Number.isInteger(driftConcurrency) || driftConcurrency < 1 || driftConcurrency > 4) {
    throw new Error(`driftConcurrency must be an integer from 1 to 4; got '${String(input.driftConcurrency)}'`);
  }
  const driftThreshold = input.driftThreshold === undefined ? DEFAULTS.driftThreshold : Number(input.driftThreshold);
  if (!Number.isInteger(driftThreshold) || driftThreshold < 0) {
    throw new Error(`driftThreshold must be an integer from 0; got '${String(input.driftThreshold)}'`);
  }

  const crlObjects = asList(input.crlObjects).map(parseS3Uri);
  if (new Set(crlObjects.map((o) => `${o.bucket}/${o.key}`)).size !== crlObjects.length) {
    throw new Error('crlObjects: duplicate object');
  }
  const crlRefreshSeconds =
    input.crlRefreshSeconds === undefined ? DEFAULTS.crlRefreshSeconds : Number(input.crlRefreshSeconds);
  if (!Number.isInteger(crlRefreshSeconds) || crlRefreshSeconds < 10 || crlRefreshSeconds > 86400) {
    throw new Error(`crlRefreshSeconds must be an integer from 10 to 86400; got '${String(input.crlRefreshSeconds)}'`);
  }

  const enableGuard = asBool('enableGuard', input.enableGuard, DEFAULTS.enableGuard);
  const optional = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : String(v));
  const guardDomainName = optional(input.guardDomainName);
  const guardCertificateArn = optional(input.guardCertificateArn);
  const guardDomainConfigurationName = String(
    input.guardDomainConfigurationName ?? DEFAULTS.guardDomainConfigurationName,
  );
  if (guardDomainName !== undefined && (!GUARD_DOMAIN_NAME.test(guardDomainName) || guardDomainName.length > 253)) {
    throw new Error(`guardDomainName is not a fully qualified domain name: '${guardDomainName}'`);
  }
  if (guardCertificateArn !== undefined && !ACM_CERTIFICATE_ARN.test(guardCertificateArn)) {
    throw new Error(`guardCertificateArn is not an ACM certificate ARN: '${guardCertificateArn}'`);
  }
  if (!DOMAIN_CONFIGURATION_NAME.test(guardDomainConfigurationName)) {
    throw new Error(`guardDomainConfigurationName must match ${DOMAIN_CONFIGURATION_NAME}; got '${guardDomainConfigurationName}'`);
  }
  if (enableGuard && (guardDomainName === undefined || guardCertificateArn === undefined)) {
    throw new Error('enableGuard needs guardDomainName and guardCertificateArn');
  }

  return {
    caCertificateIds,
    policyMode: oneOf('policyMode', String(input.policyMode ?? DEFAULTS.policyMode), ['per-thing', 'shared'] as const),
    policyPrefix,
    onReject: oneOf('onReject', String(input.onReject ?? DEFAULTS.onReject), ['revoke', 'deactivate', 'leave'] as const),
    alarmEmail,
    deliveryMode: oneOf('deliveryMode', String(input.deliveryMode ?? DEFAULTS.deliveryMode), ['sqs', 'direct'] as const),
    manageIotLogging: asBool('manageIotLogging', input.manageIotLogging, DEFAULTS.manageIotLogging),
    iotLogLevel: oneOf('iotLogLevel', String(input.iotLogLevel ?? DEFAULTS.iotLogLevel), [
      'ERROR',
      'WARN',
      'INFO',
      'DEBUG',
      'DISABLED',
    ] as const),
    maxConcurrency,
    rustLog,
    driftSchedule,
    driftConcurrency,
    driftThreshold,
    crlObjects,
    crlRefreshSeconds,
    enableGuard,
    guardMode: oneOf('guardMode', String(input.guardMode ?? DEFAULTS.guardMode), ['report', 'enforce'] as const),
    guardDomainName,
    guardCertificateArn,
    guardDomainConfigurationName,
  };
}

/** Read the settings from CDK context keys `jitp:<name>`. */
export function configFromContext(tryGetContext: (key: string) => unknown): JitpConfig {
  const keys: (keyof JitpConfig)[] = [
    'caCertificateIds',
    'policyMode',
    'policyPrefix',
    'onReject',
    'alarmEmail',
    'deliveryMode',
    'manageIotLogging',
    'iotLogLevel',
    'maxConcurrency',
    'rustLog',
    'driftSchedule',
    'driftConcurrency',
    'driftThreshold',
    'crlObjects',
    'crlRefreshSeconds',
    'enableGuard',
    'guardMode',
    'guardDomainName',
    'guardCertificateArn',
    'guardDomainConfigurationName',
  ];
  const input: Partial<Record<keyof JitpConfig, unknown>> = {};
  for (const key of keys) {
    const value = tryGetContext(`jitp:${key}`);
    if (value !== undefined) input[key] = value;
  }
  return resolveConfig(input);
}
