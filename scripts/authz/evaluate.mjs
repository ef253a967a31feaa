#!/usr/bin/env node
// Offline IAM authorization evaluator around @cloud-copilot/iam-simulate (pinned in package.json).
//
// Input (stdin, one JSON document):
//   {"requests": [{
//     "id": "unique name",
//     "principal": "arn:aws:iam::111122223333:role/path/name" | ":user/…" | ":root"
//                  | "arn:aws:sts::111122223333:assumed-role/name/session" | "cloudwatch.amazonaws.com",
//     "action": "service:Action",
//     "resource": "arn:…" (one resource, not a pattern) | "*" (actions that take no resource),
//     "resourceAccount": "111122223333",      optional: default the resource ARN's account
//                                             (the principal's for "*" and account-less ARNs)
//     "context": {"key": "value" | ["v1", …]}, optional request context
//     "identityPolicies": [document | {"name": …, "policy": document}],  optional, none for service principals
//     "resourcePolicy": document | null,      the secret / key / topic / function policy
//     "scps": [document, …] (one level) | [[document, …], …] (levels, root first)   optional
//   }]}
//   A document is a policy object or its JSON text.
// Output (stdout, exit 0):
//   {"results": [{"id", "decision": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied", "explain"}],
//    "evaluator": {"library", "version", "encryptionContext": "native" | "rewrite" | "off"}}
//   in input order. Malformed input (including anything the simulator refuses, such as an
//   unknown action or an invalid policy): exit 2 and one line on stderr. Library missing: exit 3.
//
// Context keys AWS always sends are added unless the request names them: aws:PrincipalArn
// (IAM role/user/root ARNs, not sessions: a session's role path is unknown here),
// aws:PrincipalAccount, aws:PrincipalType, aws:PrincipalIsAWSService, aws:PrincipalServiceName
// (service principals), kms:CallerAccount, and kms:EncryptionContextKeys from the
// kms:EncryptionContext:<key> entries.
//
// Workaround, iam-simulate 0.1.173: request context keys `kms:EncryptionContext:<key>` are
// dropped (the library matches a context key against the documented
// `kms:EncryptionContext:${EncryptionContextKey}` only for variables written after a `/`), so a
// condition on them never matches. In both the policies' conditions and the request context
// such a key is renamed to `aws:RequestTag/#kms:EncryptionContext:<key>`: aws:RequestTag/* is a
// global String key the library keeps for every action, with the same operator semantics
// (missing key, ...IfExists, Null, set operators), and `#` cannot occur in a real tag key, so
// the name collides with nothing. Explanations show the original names. At start-up a probe
// asks the library itself whether it honours the key; if it does, nothing is renamed.
// AUTHZ_ENCRYPTION_CONTEXT=auto (default) | rewrite | off forces a mode, for diagnosis.

import { readFileSync } from 'node:fs';

const LIBRARY = '@cloud-copilot/iam-simulate';
const EC_PREFIX = 'kms:encryptioncontext:';
const EC_ALIAS_PREFIX = 'aws:RequestTag/#';
const EC_ALIAS_PATTERN = /aws:requesttag\/#/gi;
const MODES = new Set(['auto', 'rewrite', 'off']);
const MAX_NEAR_MISSES = 3;

class InputError extends Error {}

function oneLine(text) {
  return String(text).replace(/\s+/g, ' ').trim();
}

async function loadLibrary() {
  try {
    const lib = await import(LIBRARY);
    return { lib, version: libraryVersion() };
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND') {
      process.stderr.write(`${LIBRARY} is not installed: run \`npm ci\` (or \`make setup\`) in the project root\n`);
      process.exit(3);
    }
    throw err;
  }
}

function libraryVersion() {
  // The package's exports map hides package.json, so find it from the resolved entry point.
  let url = new URL('.', import.meta.resolve(LIBRARY));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', url), 'utf8'));
      if (pkg.name === LIBRARY) return pkg.version;
    } catch {
      // not the package root yet
    }
    const parent = new URL('..', url);
    if (parent.href === url.href) return 'unknown';
    url = parent;
  }
}

// ---------------------------------------------------------------- input

const ACCOUNT = /^\d{12}$/;
const IAM_PRINCIPAL = /^arn:aws[a-z-]*:iam::(\d{12}):(root|role\/.+|user\/.+)$/;
const SESSION_PRINCIPAL = /^arn:aws[a-z-]*:sts::(\d{12}):assumed-role\/[^/]+\/.+$/;
const SERVICE_PRINCIPAL = /^[a-z0-9][a-z0-9.-]*\.amazonaws\.com$/;
const ARN = /^arn:[^:]+:[^:]*:[^:]*:([^:]*):.+$/;
const ACTION = /^[A-Za-z0-9-]+:[A-Za-z0-9]+$/;

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseDocument(value, where) {
  let doc = value;
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc);
    } catch (err) {
      throw new InputError(`${where}: policy text is not JSON (${err.message})`);
    }
  }
  if (!isObject(doc) || !('Statement' in doc)) {
    throw new InputError(`${where}: expected a policy document with a Statement`);
  }
  return doc;
}

function parsePrincipal(principal, where) {
  if (typeof principal !== 'string') throw new InputError(`${where}.principal: expected a string`);
  let match = IAM_PRINCIPAL.exec(principal);
  if (match) {
    const [, account, rest] = match;
    const type = rest === 'root' ? 'Account' : rest.startsWith('user/') ? 'User' : 'AssumedRole';
    return { kind: 'iam', account, type, arn: principal };
  }
  match = SESSION_PRINCIPAL.exec(principal);
  if (match) return { kind: 'iam', account: match[1], type: 'AssumedRole', arn: undefined };
  if (SERVICE_PRINCIPAL.test(principal)) return { kind: 'service', service: principal };
  throw new InputError(
    `${where}.principal: ${JSON.stringify(principal)} is neither an IAM role/user/root ARN, an assumed-role ARN, nor a service principal (*.amazonaws.com)`
  );
}

function parseContext(context, where) {
  if (context === undefined || context === null) return {};
  if (!isObject(context)) throw new InputError(`${where}.context: expected an object`);
  const seen = new Map();
  for (const [key, value] of Object.entries(context)) {
    const ok = typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
    if (!ok) throw new InputError(`${where}.context[${JSON.stringify(key)}]: expected a string or a list of strings`);
    if (key.toLowerCase().startsWith(EC_PREFIX) && typeof value !== 'string') {
      throw new InputError(`${where}.context[${JSON.stringify(key)}]: an encryption context value is a single string`);
    }
    const lower = key.toLowerCase();
    if (seen.has(lower)) {
      throw new InputError(
        `${where}.context: ${JSON.stringify(seen.get(lower))} and ${JSON.stringify(key)} are the same key`
      );
    }
    seen.set(lower, key);
  }
  return { ...context };
}

function parseIdentityPolicies(list, where) {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new InputError(`${where}.identityPolicies: expected a list`);
  return list.map((item, i) => {
    const at = `${where}.identityPolicies[${i}]`;
    if (isObject(item) && 'policy' in item && !('Statement' in item)) {
      if (typeof item.name !== 'string' || item.name === '')
        throw new InputError(`${at}.name: expected a non-empty string`);
      return { name: item.name, policy: parseDocument(item.policy, at) };
    }
    return { name: `identityPolicies[${i}]`, policy: parseDocument(item, at) };
  });
}

function parseScps(list, where) {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new InputError(`${where}.scps: expected a list`);
  if (list.length === 0) return [];
  const nested = list.every(Array.isArray);
  if (!nested && list.some(Array.isArray)) {
    throw new InputError(
      `${where}.scps: either a list of documents (one level) or a list of levels (lists of documents)`
    );
  }
  const levels = nested ? list : [list];
  return levels.map((level, l) => ({
    orgIdentifier: nested ? `scps[${l}]` : 'scps',
    policies: level.map((doc, i) => {
      const name = nested ? `scps[${l}][${i}]` : `scps[${i}]`;
      return { name, policy: parseDocument(doc, `${where}.${name}`) };
    })
  }));
}

function parseRequest(raw, index) {
  let where = `requests[${index}]`;
  if (!isObject(raw)) throw new InputError(`${where}: expected an object`);
  if (typeof raw.id !== 'string' || raw.id === '') throw new InputError(`${where}.id: expected a non-empty string`);
  where = `requests[${index}] (${JSON.stringify(raw.id)})`;
  const known = new Set([
    'id',
    'principal',
    'action',
    'resource',
    'resourceAccount',
    'context',
    'identityPolicies',
    'resourcePolicy',
    'scps'
  ]);
  const unknown = Object.keys(raw).filter((k) => !known.has(k));
  if (unknown.length) throw new InputError(`${where}: unknown field(s) ${unknown.join(', ')}`);

  const principal = parsePrincipal(raw.principal, where);
  if (typeof raw.action !== 'string' || !ACTION.test(raw.action)) {
    throw new InputError(`${where}.action: expected "service:Action", got ${JSON.stringify(raw.action)}`);
  }
  if (typeof raw.resource !== 'string' || !(raw.resource === '*' || ARN.test(raw.resource))) {
    throw new InputError(`${where}.resource: expected an ARN or "*", got ${JSON.stringify(raw.resource)}`);
  }
  let resourceAccount = raw.resourceAccount;
  if (resourceAccount === undefined || resourceAccount === null) {
    const arnAccount = ARN.exec(raw.resource)?.[1];
    resourceAccount = arnAccount || principal.account;
    if (!resourceAccount) {
      throw new InputError(
        `${where}.resourceAccount: required, the resource names no account and the principal has none`
      );
    }
  }
  if (typeof resourceAccount !== 'string' || !ACCOUNT.test(resourceAccount)) {
    throw new InputError(
      `${where}.resourceAccount: expected a 12-digit account ID, got ${JSON.stringify(resourceAccount)}`
    );
  }
  const identityPolicies = parseIdentityPolicies(raw.identityPolicies, where);
  if (principal.kind === 'service' && identityPolicies.length > 0) {
    throw new InputError(`${where}.identityPolicies: a service principal has no identity policies`);
  }
  const resourcePolicy =
    raw.resourcePolicy === undefined || raw.resourcePolicy === null
      ? undefined
      : parseDocument(raw.resourcePolicy, `${where}.resourcePolicy`);
  return {
    id: raw.id,
    where,
    principal,
    principalValue: raw.principal,
    action: raw.action,
    resource: raw.resource,
    resourceAccount,
    context: parseContext(raw.context, where),
    identityPolicies,
    resourcePolicy,
    scps: parseScps(raw.scps, where)
  };
}

function parseInput(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InputError(`input is not JSON: ${err.message}`);
  }
  if (!isObject(doc) || !Array.isArray(doc.requests)) {
    throw new InputError('input: expected {"requests": [...]}');
  }
  const requests = doc.requests.map(parseRequest);
  const ids = new Set();
  for (const r of requests) {
    if (ids.has(r.id)) throw new InputError(`${r.where}: duplicate id`);
    ids.add(r.id);
  }
  return requests;
}

// ---------------------------------------------------------------- context

function hasKey(context, key) {
  const lower = key.toLowerCase();
  return Object.keys(context).some((k) => k.toLowerCase() === lower);
}

// What AWS puts in every request of this kind; the caller's values win.
function derivedContext(request) {
  const { principal, context, action } = request;
  const derived = {};
  if (principal.kind === 'service') {
    derived['aws:PrincipalServiceName'] = principal.service;
    derived['aws:PrincipalIsAWSService'] = 'true';
  } else {
    if (principal.arn) derived['aws:PrincipalArn'] = principal.arn;
    derived['aws:PrincipalAccount'] = principal.account;
    derived['aws:PrincipalType'] = principal.type;
    derived['aws:PrincipalIsAWSService'] = 'false';
    if (action.toLowerCase().startsWith('kms:')) derived['kms:CallerAccount'] = principal.account;
  }
  const ecKeys = Object.keys(context)
    .filter((k) => k.toLowerCase().startsWith(EC_PREFIX))
    .map((k) => k.slice(EC_PREFIX.length));
  if (ecKeys.length > 0) derived['kms:EncryptionContextKeys'] = ecKeys;
  const full = { ...context };
  for (const [key, value] of Object.entries(derived)) {
    if (!hasKey(context, key)) full[key] = value;
  }
  return full;
}

// ---------------------------------------------------------------- encryption-context workaround

function ecAlias(key) {
  return EC_ALIAS_PREFIX + key;
}

function restoreNames(text) {
  return text.replace(EC_ALIAS_PATTERN, '');
}

function rewriteConditionKeys(condition) {
  if (!isObject(condition)) return condition;
  const out = {};
  for (const [operator, block] of Object.entries(condition)) {
    if (!isObject(block)) {
      out[operator] = block;
      continue;
    }
    const renamed = {};
    for (const [key, value] of Object.entries(block)) {
      renamed[key.toLowerCase().startsWith(EC_PREFIX) ? ecAlias(key) : key] = value;
    }
    out[operator] = renamed;
  }
  return out;
}

function rewritePolicy(policy) {
  const rewriteStatement = (s) =>
    isObject(s) && 'Condition' in s ? { ...s, Condition: rewriteConditionKeys(s.Condition) } : s;
  const statements = Array.isArray(policy.Statement)
    ? policy.Statement.map(rewriteStatement)
    : rewriteStatement(policy.Statement);
  return { ...policy, Statement: statements };
}

const ecSupportCache = new Map();

// Only actions for which AWS sends the encryption context get it, as the library would decide
// if it kept the key.
async function actionTakesEncryptionContext(lib, action, resource) {
  const cacheKey = `${action.toLowerCase()} ${resource}`;
  if (!ecSupportCache.has(cacheKey)) {
    const [service, name] = action.split(':');
    let supported;
    try {
      const keys = await lib.allowedContextKeysForRequest(service, name, resource, false);
      supported = keys.includes('kms:encryptioncontext:${encryptioncontextkey}');
    } catch {
      supported = service.toLowerCase() === 'kms';
    }
    ecSupportCache.set(cacheKey, supported);
  }
  return ecSupportCache.get(cacheKey);
}

async function applyWorkaround(lib, request, context) {
  const takesEc = await actionTakesEncryptionContext(lib, request.action, request.resource);
  const rewritten = {};
  for (const [key, value] of Object.entries(context)) {
    rewritten[takesEc && key.toLowerCase().startsWith(EC_PREFIX) ? ecAlias(key) : key] = value;
  }
  return {
    context: rewritten,
    identityPolicies: request.identityPolicies.map((p) => ({ ...p, policy: rewritePolicy(p.policy) })),
    resourcePolicy: request.resourcePolicy && rewritePolicy(request.resourcePolicy),
    scps: request.scps.map((level) => ({
      ...level,
      policies: level.policies.map((p) => ({ ...p, policy: rewritePolicy(p.policy) }))
    }))
  };
}

// Asks the unmodified library whether a key-policy condition on kms:EncryptionContext:<key>
// matches, for a plain key and for one with colons (as the services' own keys have).
async function libraryHonoursEncryptionContext(lib) {
  const role = 'arn:aws:iam::111122223333:role/probe';
  const probe = async (key, policyValue, requestValue) => {
    const response = await lib.runSimulation(
      {
        request: {
          principal: role,
          action: 'kms:Decrypt',
          resource: {
            resource: 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000',
            accountId: '111122223333'
          },
          contextVariables: { [key]: requestValue }
        },
        identityPolicies: [],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Principal: { AWS: role },
              Action: 'kms:Decrypt',
              Resource: '*',
              Condition: { StringEquals: { [key]: policyValue } }
            }
          ]
        }
      },
      {}
    );
    return response.resultType === 'single' ? response.overallResult : 'error';
  };
  const results = await Promise.all([
    probe('kms:EncryptionContext:SecretARN', 'a', 'a'),
    probe('kms:EncryptionContext:SecretARN', 'a', 'b'),
    probe('kms:EncryptionContext:aws:sns:topicArn', 'a', 'a')
  ]);
  return results.join() === 'Allowed,ImplicitlyDenied,Allowed';
}

// ---------------------------------------------------------------- explanation

function statementLabel(analysis) {
  const sid = analysis.statement.sid();
  return sid ? `"${sid}" (#${analysis.statement.index()})` : `#${analysis.statement.index()}`;
}

function policyLabel(kind, analysis) {
  switch (kind) {
    case 'identity':
      return `identity policy ${analysis.policyId} statement ${statementLabel(analysis)}`;
    case 'resource':
      return `resource policy statement ${statementLabel(analysis)}`;
    default:
      return `${kind.toUpperCase()} ${analysis.policyId} statement ${statementLabel(analysis)}`;
  }
}

function conditionFailures(analysis) {
  const conditions = analysis.explain?.conditions ?? [];
  return conditions
    .filter((c) => !c.matches)
    .map(
      (c) => `${c.operator} ${c.conditionKeyValue}${c.failedBecauseMissing ? ' (key absent from the request)' : ''}`
    );
}

function nearMisses(kind, section) {
  if (!section) return [];
  return section.unmatchedStatements
    .filter(
      (s) =>
        s.statement.effect() === 'Allow' &&
        s.actionMatch &&
        s.resourceMatch &&
        s.principalMatch !== 'NoMatch' &&
        s.conditionMatch !== 'Match' &&
        s.conditionMatch !== true
    )
    .map((s) => `${policyLabel(kind, s)} not matched: ${conditionFailures(s).join(', ') || 'condition not met'}`);
}

function ouStatements(ouAnalysis, field) {
  return (ouAnalysis ?? []).flatMap((ou) => ou[field]);
}

function explainAnalysis(analysis, request) {
  const result = analysis.result;
  if (result === 'ExplicitlyDenied') {
    const denies = [
      ...analysis.identityAnalysis.denyStatements.map((s) => policyLabel('identity', s)),
      ...(analysis.resourceAnalysis?.denyStatements ?? []).map((s) => policyLabel('resource', s)),
      ...ouStatements(analysis.scpAnalysis?.ouAnalysis, 'denyStatements').map((s) => policyLabel('scp', s))
    ];
    return `explicitly denied by ${denies.join('; ') || (analysis.blockedBy ?? []).join(', ')}`;
  }
  if (result === 'Allowed') {
    const grants = [
      ...analysis.identityAnalysis.allowStatements.map((s) => policyLabel('identity', s)),
      ...(analysis.resourceAnalysis?.allowStatements ?? []).map(
        (s) => policyLabel('resource', s) + (s.principalMatch === 'AccountLevelMatch' ? ' [allows the account]' : '')
      )
    ];
    return `allowed by ${grants.join('; ')}`;
  }

  const reasons = [];
  const identity = analysis.identityAnalysis.result;
  const resource = analysis.resourceAnalysis?.result ?? 'NotApplicable';
  const blocked = analysis.blockedBy ?? [];
  if (blocked.length > 0) {
    const scpLevels = (analysis.scpAnalysis?.ouAnalysis ?? [])
      .filter((ou) => ou.result !== 'Allowed')
      .map((ou) => ou.orgIdentifier);
    reasons.push(
      `blocked by ${blocked.map((b) => (b === 'scp' && scpLevels.length ? `SCPs (no Allow at ${scpLevels.join(', ')})` : b)).join(', ')}`
    );
  } else if (request.principal.kind === 'service') {
    reasons.push(
      `a service principal is allowed only by the resource policy, and ${resource === 'NotApplicable' ? 'there is none' : 'no statement of it allows this request'}`
    );
  } else if (!analysis.sameAccount) {
    reasons.push(
      `cross-account (principal ${request.principal.account}, resource ${request.resourceAccount}): needs an identity-policy allow (${identity}) and a resource-policy allow for the principal (${resource})`
    );
  } else if (request.action.toLowerCase().startsWith('kms:') && identity === 'Allowed') {
    reasons.push(
      'IAM policies allow it, but they count only when the key policy allows the account (a statement whose principal is the account), and none matches'
    );
  } else if (resource === 'AllowedForAccount') {
    reasons.push(
      'the resource policy allows only the account (delegating to IAM policies), and no identity policy allows it'
    );
  } else {
    reasons.push(`no statement allows it (identity policies: ${identity}, resource policy: ${resource})`);
  }
  const misses = [
    ...nearMisses('identity', analysis.identityAnalysis),
    ...nearMisses('resource', analysis.resourceAnalysis)
  ];
  if (misses.length > 0) {
    const shown = misses.slice(0, MAX_NEAR_MISSES);
    reasons.push(shown.join('; ') + (misses.length > shown.length ? `; and ${misses.length - shown.length} more` : ''));
  }
  return reasons.join('; ');
}

function explainResponse(response, request, notes) {
  const text = explainAnalysis(response.result.analysis, request);
  const ignored = response.result.ignoredContextKeys ?? [];
  const callerIgnored = ignored.filter((key) => hasKey(request.context, key));
  if (callerIgnored.length > 0)
    notes.push(`context keys the simulator ignored for ${request.action}: ${callerIgnored.join(', ')}`);
  return restoreNames([text, ...notes].join('; '));
}

// ---------------------------------------------------------------- evaluation

async function evaluate(lib, request, rewrite) {
  const notes = [];
  let inputs = {
    context: derivedContext(request),
    identityPolicies: request.identityPolicies,
    resourcePolicy: request.resourcePolicy,
    scps: request.scps
  };
  if (rewrite) inputs = await applyWorkaround(lib, request, inputs.context);
  let scps = inputs.scps;
  if (request.principal.kind === 'service' && scps.length > 0) {
    // AWS does not apply SCPs to service principals.
    scps = [];
    notes.push('SCPs do not apply to a service principal');
  }
  const response = await lib.runSimulation(
    {
      request: {
        principal: request.principalValue,
        action: request.action,
        resource: { resource: request.resource, accountId: request.resourceAccount },
        contextVariables: inputs.context
      },
      identityPolicies: inputs.identityPolicies,
      serviceControlPolicies: scps,
      resourceControlPolicies: [],
      resourcePolicy: inputs.resourcePolicy
    },
    {}
  );
  if (response.resultType === 'error') {
    const { message, ...details } = response.errors;
    const detail = Object.keys(details).length ? `: ${JSON.stringify(details)}` : '';
    throw new InputError(
      restoreNames(`${request.where}: the simulator refused it: ${message}${detail}`).slice(0, 2000)
    );
  }
  if (response.resultType !== 'single') {
    // For a pattern the library answers whether *some* matching resource is allowed, which
    // reads like an answer for all of them.
    throw new InputError(`${request.where}.resource: give one resource, not a pattern (${request.resource})`);
  }
  return { id: request.id, decision: response.overallResult, explain: explainResponse(response, request, notes) };
}

async function main() {
  const mode = process.env.AUTHZ_ENCRYPTION_CONTEXT || 'auto';
  if (!MODES.has(mode)) {
    throw new InputError(
      `AUTHZ_ENCRYPTION_CONTEXT: expected one of ${[...MODES].join(', ')}, got ${JSON.stringify(mode)}`
    );
  }
  const requests = parseInput(readFileSync(0, 'utf8'));
  const { lib, version } = await loadLibrary();
  const effective = mode === 'auto' ? ((await libraryHonoursEncryptionContext(lib)) ? 'native' : 'rewrite') : mode;
  const results = [];
  for (const request of requests) {
    results.push(await evaluate(lib, request, effective === 'rewrite'));
  }
  process.stdout.write(
    JSON.stringify({ results, evaluator: { library: LIBRARY, version, encryptionContext: effective } }) + '\n'
  );
}

try {
  await main();
} catch (err) {
  if (!(err instanceof InputError)) throw err;
  process.stderr.write(oneLine(err.message) + '\n');
  process.exitCode = 2;
}
