// sfnlocal.mjs serves the Step Functions API (AWS JSON 1.0 protocol) on a
// loopback address and runs executions with aws-local-stepfunctions. Every
// Task state invokes its Lambda function through the Lambda Invoke API at
// config.lambdaEndpoint, the way the Step Functions service invokes a
// function given by ARN: a function error becomes a state error named by the
// errorType whose Cause is the error payload as a JSON string.
//
// It is started by the Go package sfnlocal with two environment variables:
// CERTFLOW_SFN_CONFIG (path of a JSON config file written by Go) and
// CERTFLOW_SFN_MODULES (the node_modules directory holding
// aws-local-stepfunctions and @aws-sdk/client-lambda). It prints one line
// "certflow-sfnlocal listening <url>" once it accepts requests, and exits when
// its standard input closes (its parent is gone) or on SIGTERM.

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.env.CERTFLOW_SFN_CONFIG, 'utf8'));
const modulesDir = process.env.CERTFLOW_SFN_MODULES;
const requireModule = createRequire(join(modulesDir, 'certflow-sfnlocal.cjs'));
const { StateMachine } = await import(
  pathToFileURL(join(modulesDir, 'aws-local-stepfunctions', 'build', 'main.node.esm.js')).href
);
const { LambdaClient, InvokeCommand } = requireModule('@aws-sdk/client-lambda');
const { NodeHttpHandler } = requireModule('@smithy/node-http-handler');

const region = config.region;
const accountId = config.accountId;
const roleArn = `arn:aws:iam::${accountId}:role/certflow-offline-state-machine`;
const maxInputBytes = 256 * 1024;

const lambda = new LambdaClient({
  endpoint: config.lambdaEndpoint,
  region,
  credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' },
  // Retries belong to the state machine's Retry fields, as in AWS.
  maxAttempts: 1,
  // The SDK's default pool of 50 sockets would queue invocations here,
  // where their Task timeouts run, which Step Functions never does: with
  // thousands of executions at once they time out and retry in a loop.
  requestHandler: new NodeHttpHandler({ httpAgent: { maxSockets: 1000 } }),
});

class APIError extends Error {
  constructor(type, message, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** State machines by ARN, in the order they were configured. */
const machines = new Map();
for (const sm of config.stateMachines) {
  const definition = JSON.parse(sm.definition);
  machines.set(sm.arn, {
    arn: sm.arn,
    name: sm.name,
    definitionText: sm.definition,
    definition,
    creationDate: Date.now(),
    // Validates the definition at start, so a broken one fails fast.
    machine: new StateMachine(definition, { validationOptions: { checkArn: true, checkPaths: true } }),
  });
}

/** Executions by ARN; seq orders them for listing and paging. */
const executions = new Map();
let executionSeq = 0;

const invalidNameChars = /[\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]/u;

function validateName(name) {
  if (typeof name !== 'string' || name.length < 1 || name.length > 80) {
    throw new APIError('InvalidName', `Invalid Name: '${name}' (length must be between 1 and 80)`);
  }
  if (invalidNameChars.test(name)) {
    throw new APIError('InvalidName', `Invalid Name: '${name}'`);
  }
}

function epochSeconds(ms) {
  return ms / 1000;
}

function getMachine(arn) {
  if (typeof arn !== 'string' || !arn.startsWith('arn:')) {
    throw new APIError('InvalidArn', `Invalid Arn: '${arn}'`);
  }
  const sm = machines.get(arn);
  if (!sm) throw new APIError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
  return sm;
}

function getExecution(arn) {
  if (typeof arn !== 'string' || !arn.startsWith('arn:')) {
    throw new APIError('InvalidArn', `Invalid Arn: '${arn}'`);
  }
  const ex = executions.get(arn);
  if (!ex) throw new APIError('ExecutionDoesNotExist', `Execution Does Not Exist: '${arn}'`);
  return ex;
}

function pageSize(maxResults, fallback = 100) {
  if (maxResults === undefined || maxResults === null || maxResults === 0) return fallback;
  if (!Number.isInteger(maxResults) || maxResults < 0 || maxResults > 1000) {
    throw new APIError('ValidationException', 'maxResults must be between 0 and 1000');
  }
  return maxResults;
}

function pageStart(nextToken) {
  if (nextToken === undefined || nextToken === null || nextToken === '') return 0;
  const n = Number.parseInt(Buffer.from(String(nextToken), 'base64url').toString(), 10);
  if (!Number.isInteger(n) || n < 0) throw new APIError('InvalidToken', `Invalid Token: '${nextToken}'`);
  return n;
}

function page(items, body, key) {
  const start = pageStart(body.nextToken);
  const size = pageSize(body.maxResults);
  const out = { [key]: items.slice(start, start + size) };
  if (start + size < items.length) {
    out.nextToken = Buffer.from(String(start + size)).toString('base64url');
  }
  return out;
}

// History: AWS event shapes. Task states' Lambda events are produced by the
// invocation itself and held in ex.pending until the engine's own event that
// follows them (state failed/exited) is read, so the order is the one AWS
// records. Executions here have no Parallel or Map states running
// concurrently, which that ordering relies on.

function record(ex, type, details) {
  const id = ex.events.length + 1;
  ex.events.push({ id, previousEventId: id - 1, timestamp: Date.now(), type, ...details });
}

// flushPending records the Lambda events of state (all of them when state
// is undefined): the runtime may invoke the next state's function before
// the consumer has seen the previous state exit, so events wait for their
// own state's entry and exit.
function flushPending(ex, state) {
  const keep = [];
  for (const entry of ex.pending.splice(0)) {
    const [type, details, timestamp, owner] = entry;
    if (state !== undefined && owner !== state) {
      keep.push(entry);
      continue;
    }
    record(ex, type, details);
    ex.events[ex.events.length - 1].timestamp = timestamp;
  }
  ex.pending.push(...keep);
}

function setTimestamp(ex, ms) {
  ex.events[ex.events.length - 1].timestamp = ms;
}

function stringify(value) {
  return JSON.stringify(value === undefined ? null : value);
}

async function consumeEvents(ex, eventLogs) {
  for await (const ev of eventLogs) {
    switch (ev.type) {
      case 'ExecutionStarted':
        record(ex, 'ExecutionStarted', {
          executionStartedEventDetails: {
            input: stringify(ev.input),
            inputDetails: { truncated: false },
            roleArn,
          },
        });
        break;
      case 'StateEntered':
        record(ex, `${ev.state.type}StateEntered`, {
          stateEnteredEventDetails: {
            name: ev.state.name,
            input: stringify(ev.state.input),
            inputDetails: { truncated: false },
          },
        });
        setTimestamp(ex, ev.timestamp);
        flushPending(ex, ev.state.name);
        continue;
      case 'StateExited':
        flushPending(ex, ev.state.name);
        record(ex, `${ev.state.type}StateExited`, {
          stateExitedEventDetails: {
            name: ev.state.name,
            output: stringify(ev.state.output),
            outputDetails: { truncated: false },
          },
        });
        break;
      case 'StateFailed':
      case 'StateRetried':
      case 'StateCaught':
        // AWS has no events of its own for these: the Lambda events carry
        // the failure and a retry is a new LambdaFunctionScheduled.
        flushPending(ex, ev.state?.name);
        continue;
      case 'ExecutionSucceeded':
        flushPending(ex);
        record(ex, 'ExecutionSucceeded', {
          executionSucceededEventDetails: { output: stringify(ev.output), outputDetails: { truncated: false } },
        });
        break;
      case 'ExecutionFailed':
        flushPending(ex);
        ex.error = String(ev.Error ?? '');
        ex.cause = typeof ev.Cause === 'string' ? ev.Cause : stringify(ev.Cause);
        record(ex, 'ExecutionFailed', { executionFailedEventDetails: { error: ex.error, cause: ex.cause } });
        break;
      case 'ExecutionAborted':
        flushPending(ex);
        record(ex, 'ExecutionAborted', {
          executionAbortedEventDetails: { error: ex.error ?? '', cause: ex.cause ?? '' },
        });
        break;
      case 'ExecutionTimeout':
        flushPending(ex);
        ex.error = 'States.Timeout';
        record(ex, 'ExecutionTimedOut', { executionTimedOutEventDetails: { error: 'States.Timeout' } });
        break;
      default:
        continue;
    }
    setTimestamp(ex, ev.timestamp);
  }
}

function pendingEvent(ex, type, details, state) {
  ex.pending.push([type, details, Date.now(), state]);
}

/** Invokes a Lambda function for a Task state as the Step Functions service does. */
async function invokeLambda(ex, state, resource, input, timeoutInSeconds) {
  pendingEvent(ex, 'LambdaFunctionScheduled', {
    lambdaFunctionScheduledEventDetails: {
      resource,
      input: stringify(input),
      inputDetails: { truncated: false },
      timeoutInSeconds,
    },
  }, state);
  let result;
  try {
    result = await lambda.send(
      new InvokeCommand({ FunctionName: resource, Payload: Buffer.from(JSON.stringify(input ?? null)) }),
    );
  } catch (err) {
    // AWS reports service errors as Lambda.<Exception> and errors of its
    // own client (connection refused, timeouts) as Lambda.SdkClientException.
    const name = err?.$metadata?.httpStatusCode ? `Lambda.${err.name}` : 'Lambda.SdkClientException';
    const cause = String(err?.message ?? err);
    pendingEvent(ex, 'LambdaFunctionStartFailed', { lambdaFunctionStartFailedEventDetails: { error: name, cause } }, state);
    const e = new Error(cause);
    e.name = name;
    throw e;
  }
  pendingEvent(ex, 'LambdaFunctionStarted', {}, state);
  const text = result.Payload ? Buffer.from(result.Payload).toString('utf8') : '';
  if (result.FunctionError) {
    let errorType = 'Lambda.Unknown';
    try {
      errorType = JSON.parse(text).errorType || errorType;
    } catch {
      // Not JSON: keep Lambda.Unknown, as AWS does.
    }
    // A function that timed out or ran out of memory (the sandbox's own
    // errors) is reported as Lambda.Unknown.
    if (errorType.startsWith('Sandbox.') || errorType.startsWith('Runtime.')) {
      errorType = 'Lambda.Unknown';
    }
    pendingEvent(ex, 'LambdaFunctionFailed', { lambdaFunctionFailedEventDetails: { error: errorType, cause: text } }, state);
    const e = new Error(text);
    e.name = errorType;
    throw e;
  }
  pendingEvent(ex, 'LambdaFunctionSucceeded', {
    lambdaFunctionSucceededEventDetails: { output: text === '' ? 'null' : text, outputDetails: { truncated: false } },
  }, state);
  return text === '' ? null : JSON.parse(text);
}

function runOverrides(ex, definition) {
  const taskResourceLocalHandlers = {};
  const waitTimeOverrides = {};
  const retryIntervalOverrides = {};
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type === 'Task') {
      taskResourceLocalHandlers[name] = (input) =>
        invokeLambda(ex, name, state.Resource, input, state.TimeoutSeconds ?? 60);
    }
    // A wait until a timestamp names a real time (an order slot of the
    // budget): only waits of a duration are compressed.
    if (state.Type === 'Wait' && config.waitOverrideMs !== null && !state.Timestamp && !state.TimestampPath) {
      waitTimeOverrides[name] = config.waitOverrideMs;
    }
    if (Array.isArray(state.Retry) && config.retryOverrideMs !== null) {
      retryIntervalOverrides[name] = config.retryOverrideMs;
    }
  }
  return { taskResourceLocalHandlers, waitTimeOverrides, retryIntervalOverrides };
}

function startExecution(body) {
  const sm = getMachine(body.stateMachineArn);
  const name = body.name ?? randomUUID();
  validateName(name);
  const inputText = body.input ?? '{}';
  if (typeof inputText !== 'string' || Buffer.byteLength(inputText) > maxInputBytes) {
    throw new APIError('InvalidExecutionInput', 'Invalid State Machine Execution Input: exceeds 262144 bytes');
  }
  let input;
  try {
    input = JSON.parse(inputText);
  } catch (err) {
    throw new APIError('InvalidExecutionInput', `Invalid State Machine Execution Input: '${err.message}'`);
  }
  const arn = `arn:aws:states:${region}:${accountId}:execution:${sm.name}:${name}`;
  const existing = executions.get(arn);
  if (existing) {
    // Standard workflows: the same name and input while running is
    // idempotent; anything else is a conflict.
    if (existing.status === 'RUNNING' && existing.input === inputText) {
      return { executionArn: arn, startDate: epochSeconds(existing.startDate) };
    }
    throw new APIError('ExecutionAlreadyExists', `Execution Already Exists: '${arn}'`);
  }

  const startDate = Date.now();
  const ex = {
    seq: executionSeq++,
    arn,
    name,
    sm,
    input: inputText,
    status: 'RUNNING',
    startDate,
    stopDate: undefined,
    output: undefined,
    error: undefined,
    cause: undefined,
    events: [],
    pending: [],
    abort: undefined,
  };
  executions.set(arn, ex);
  const { abort, result, eventLogs } = sm.machine.run(input, {
    overrides: runOverrides(ex, sm.definition),
    context: {
      Execution: {
        Id: arn,
        Name: name,
        StartTime: new Date(startDate).toISOString(),
        Input: input,
        RoleArn: roleArn,
        RedriveCount: 0,
      },
      StateMachine: { Id: sm.arn, Name: sm.name },
    },
  });
  ex.abort = abort;
  const consumed = consumeEvents(ex, eventLogs).catch((err) => {
    process.stderr.write(`sfnlocal: history of ${arn}: ${err?.stack ?? err}\n`);
  });
  Promise.allSettled([result, consumed]).then(([settled]) => {
    if (ex.status !== 'RUNNING') return;
    ex.stopDate = Date.now();
    if (settled.status === 'fulfilled') {
      ex.status = 'SUCCEEDED';
      ex.output = stringify(settled.value);
    } else if (settled.reason?.name === 'ExecutionAbortedError' || ex.stopRequested) {
      ex.status = 'ABORTED';
    } else if (settled.reason?.name === 'ExecutionTimeoutError') {
      ex.status = 'TIMED_OUT';
    } else {
      ex.status = 'FAILED';
      ex.error ??= String(settled.reason?.name ?? 'States.Runtime');
      ex.cause ??= String(settled.reason?.message ?? '');
    }
  });
  return { executionArn: arn, startDate: epochSeconds(startDate) };
}

function describeExecution(body) {
  const ex = getExecution(body.executionArn);
  const out = {
    executionArn: ex.arn,
    stateMachineArn: ex.sm.arn,
    name: ex.name,
    status: ex.status,
    startDate: epochSeconds(ex.startDate),
    input: ex.input,
    inputDetails: { included: true },
    redriveCount: 0,
    redriveStatus: 'NOT_REDRIVABLE',
  };
  if (ex.stopDate !== undefined) out.stopDate = epochSeconds(ex.stopDate);
  if (ex.output !== undefined) {
    out.output = ex.output;
    out.outputDetails = { included: true };
  }
  if (ex.status !== 'RUNNING' && ex.status !== 'SUCCEEDED') {
    if (ex.error !== undefined) out.error = ex.error;
    if (ex.cause !== undefined) out.cause = ex.cause;
  }
  return out;
}

function executionSummary(ex) {
  const out = {
    executionArn: ex.arn,
    stateMachineArn: ex.sm.arn,
    name: ex.name,
    status: ex.status,
    startDate: epochSeconds(ex.startDate),
  };
  if (ex.stopDate !== undefined) out.stopDate = epochSeconds(ex.stopDate);
  return out;
}

function listExecutions(body) {
  const sm = getMachine(body.stateMachineArn);
  const statuses = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED', 'PENDING_REDRIVE'];
  if (body.statusFilter !== undefined && !statuses.includes(body.statusFilter)) {
    throw new APIError('ValidationException', `invalid statusFilter '${body.statusFilter}'`);
  }
  const items = [...executions.values()]
    .filter((ex) => ex.sm === sm && (body.statusFilter === undefined || ex.status === body.statusFilter))
    .sort((a, b) => b.seq - a.seq) // newest first, as AWS lists them
    .map(executionSummary);
  return page(items, body, 'executions');
}

function listStateMachines(body) {
  const items = [...machines.values()].map((sm) => ({
    stateMachineArn: sm.arn,
    name: sm.name,
    type: 'STANDARD',
    creationDate: epochSeconds(sm.creationDate),
  }));
  return page(items, body, 'stateMachines');
}

function describeStateMachine(sm) {
  return {
    stateMachineArn: sm.arn,
    name: sm.name,
    status: 'ACTIVE',
    definition: sm.definitionText,
    roleArn,
    type: 'STANDARD',
    creationDate: epochSeconds(sm.creationDate),
    loggingConfiguration: { level: 'OFF', includeExecutionData: false },
    tracingConfiguration: { enabled: false },
  };
}

function stopExecution(body) {
  const ex = getExecution(body.executionArn);
  if (ex.status === 'RUNNING') {
    ex.stopRequested = true;
    ex.error = body.error ?? '';
    ex.cause = body.cause ?? '';
    ex.status = 'ABORTED';
    ex.stopDate = Date.now();
    ex.abort();
  }
  return { stopDate: epochSeconds(ex.stopDate ?? Date.now()) };
}

function getExecutionHistory(body) {
  const ex = getExecution(body.executionArn);
  const includeData = body.includeExecutionData !== false;
  let events = ex.events.map((e) => ({ ...e, timestamp: epochSeconds(e.timestamp) }));
  if (!includeData) {
    events = events.map((e) => JSON.parse(JSON.stringify(e, (k, v) => (k === 'input' || k === 'output' ? undefined : v))));
  }
  if (body.reverseOrder) events.reverse();
  return page(events, body, 'events');
}

const operations = {
  StartExecution: startExecution,
  DescribeExecution: describeExecution,
  ListExecutions: listExecutions,
  ListStateMachines: listStateMachines,
  DescribeStateMachine: (body) => describeStateMachine(getMachine(body.stateMachineArn)),
  DescribeStateMachineForExecution: (body) => {
    const d = describeStateMachine(getExecution(body.executionArn).sm);
    return { stateMachineArn: d.stateMachineArn, name: d.name, definition: d.definition, roleArn: d.roleArn, updateDate: d.creationDate };
  },
  StopExecution: stopExecution,
  GetExecutionHistory: getExecutionHistory,
};

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/x-amz-json-1.0',
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': randomUUID(),
  });
  res.end(text);
}

function sendError(res, err) {
  send(res, err.status, { __type: err.type, message: err.message });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      if (req.method !== 'POST') throw new APIError('UnknownOperationException', 'only POST is supported', 404);
      const target = String(req.headers['x-amz-target'] ?? '');
      const op = operations[target.replace(/^AWSStepFunctions\./, '')];
      if (!target.startsWith('AWSStepFunctions.') || !op) {
        throw new APIError('UnknownOperationException', `unknown operation '${target}'`);
      }
      let body = {};
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() !== '') {
        try {
          body = JSON.parse(text);
        } catch {
          throw new APIError('SerializationException', 'request body is not JSON');
        }
      }
      send(res, 200, op(body ?? {}));
    } catch (err) {
      if (err instanceof APIError) {
        sendError(res, err);
        return;
      }
      process.stderr.write(`sfnlocal: ${err?.stack ?? err}\n`);
      sendError(res, new APIError('InternalFailure', 'internal error', 500));
    }
  });
});

function shutdown() {
  for (const ex of executions.values()) {
    if (ex.status === 'RUNNING') {
      try {
        ex.abort();
      } catch {
        // Already finished.
      }
    }
  }
  server.close();
  process.exit(0);
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();

server.listen(config.port, config.host, () => {
  const { port } = server.address();
  process.stdout.write(`certflow-sfnlocal listening http://${config.host}:${port}\n`);
});
