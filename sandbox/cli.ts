/**
 * `npm run sandbox [-- --scenario NAME [options] [--json]]`: the local cloud's command line.
 * Without options it runs the demo. With `--json` the last line printed is one JSON object.
 * `--serve` runs the playground instead (`serve.ts`) until SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util';
import { runAbuse } from './scenarios/abuse.js';
import { runAdaptive } from './scenarios/adaptive.js';
import { runBurst } from './scenarios/burst.js';
import { runChaos } from './scenarios/chaos.js';
import { runCopyAtBoot } from './scenarios/copy-at-boot.js';
import { runDemo } from './scenarios/demo.js';
import { runGrowthScenario } from './scenarios/growth.js';
import { runPushScenario } from './scenarios/push.js';
import { runScale } from './scenarios/scale.js';
import { resolveRules, type StrictRule, strictRuleNames } from './sim/rules.js';

// Node 20 runs the tests and the sandbox here; the Lambdas run on Node 22. The SDK's notice about it is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const usage = `usage: npm run sandbox -- --serve [--azs K] [--idle-per-az M] [--time-scale X] [--seed S] [--agent scripts|model]
       npm run sandbox -- [--scenario demo|burst|push|growth|chaos|scale|abuse|adaptive|copy-at-boot] [--instances N] [--idle-per-az M] [--azs K]
                      [--burst B] [--days D] [--operations N] [--seed S] [--time-scale X] [--agent scripts|model] [--json]
                      [--content-gib G] [--initialization provisioned-rate|default-rate] [--initialization-rate R]
                      [--boot-unit]  (chaos: the served group runs the boot unit, the events function's path)
                      [--cold-direct-volume hold|continue]  (burst: content size, warm-volume settings;
                      copy-at-boot: --instances N --content-gib G, each instance copies the content at boot, no Volsd)
                      [--no-rule NAME]...  (switch an AWS-strict rule off, for comparison: ${strictRuleNames.join(', ')})`;

function fail(message: string): never {
  console.error(`volsd sandbox: ${message}\n${usage}`);
  process.exit(2);
}

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got "${value}"`);
  return n;
}

let parsed: ReturnType<typeof parseArgs>;
try {
  parsed = parseArgs({
    options: {
      scenario: { type: 'string', default: 'demo' },
      instances: { type: 'string' },
      'idle-per-az': { type: 'string' },
      azs: { type: 'string' },
      seed: { type: 'string' },
      operations: { type: 'string' },
      burst: { type: 'string' },
      days: { type: 'string' },
      agent: { type: 'string' },
      'no-rule': { type: 'string', multiple: true },
      'time-scale': { type: 'string' },
      'content-gib': { type: 'string' },
      initialization: { type: 'string' },
      'initialization-rate': { type: 'string' },
      'cold-direct-volume': { type: 'string' },
      'boot-unit': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      serve: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
} catch (err) {
  fail((err as Error).message);
}
const v = parsed.values as Record<string, string | boolean | undefined>;
if (v.help) {
  console.log(usage);
  process.exit(0);
}
const json = v.json === true;
// 0.05: 20x faster than real time. Scripts and the AWS CLI run at wall speed, so a smaller scale would
// inflate their share of every modelled figure (see docs/sandbox.md).
const timeScale = v['time-scale'] === undefined ? 0.05 : Number(v['time-scale']);
if (!(timeScale > 0 && timeScale <= 1)) fail('--time-scale must be in (0, 1]');
const seed = positiveInt('seed', v.seed as string | undefined, 1, 0);
// With --json, stdout carries the result alone; progress goes to stderr.
const log = json ? (line: string) => console.error(line) : (line: string) => console.log(line);

const agentOption = v.agent as string | undefined;
if (agentOption !== undefined && agentOption !== 'scripts' && agentOption !== 'model')
  fail(`--agent must be scripts or model, got "${agentOption}"`);
const agent = agentOption as 'scripts' | 'model' | undefined;

// Every AWS-strict rule is on; --no-rule switches one off, for comparison only.
const off = (parsed.values['no-rule'] as string[] | undefined) ?? [];
let rules: Partial<Record<StrictRule, boolean>> | undefined;
try {
  rules = off.length ? resolveRules(Object.fromEntries(off.map((n) => [n, false]))) : undefined;
} catch (err) {
  fail((err as Error).message);
}
const ruleOptions = rules ? { rules } : {};

if (v.serve) {
  for (const name of ['scenario', 'instances', 'operations', 'burst', 'json'])
    if (process.argv.some((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`)))
      fail(`--serve does not take --${name}`);
  const { servePlayground } = await import('./serve.js');
  try {
    await servePlayground({
      azs: positiveInt('azs', v.azs as string | undefined, 1),
      idlePerAz: positiveInt('idle-per-az', v['idle-per-az'] as string | undefined, 2, 0),
      seed,
      timeScale,
      ...(agent ? { agent } : {}),
      ...(rules ? { rules } : {}),
    });
  } catch (err) {
    console.error(`volsd sandbox: --serve stopped: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  process.exit(0);
}
// Warm volumes (issue 17): the content's modelled size and the pool's initialization settings.
const contentGiBOption = v['content-gib'] as string | undefined;
const contentGiB = contentGiBOption === undefined ? undefined : Number(contentGiBOption);
if (contentGiB !== undefined && !(contentGiB >= 0 && contentGiB <= 65536))
  fail(`--content-gib must be a number of GiB in 0..65536, got "${contentGiBOption}"`);
const initialization = v.initialization as string | undefined;
if (
  initialization !== undefined &&
  initialization !== 'provisioned-rate' &&
  initialization !== 'default-rate'
)
  fail(`--initialization must be provisioned-rate or default-rate, got "${initialization}"`);
const rateOption = v['initialization-rate'] as string | undefined;
const initializationRate = rateOption === undefined ? undefined : Number(rateOption);
if (
  initializationRate !== undefined &&
  !(Number.isInteger(initializationRate) && initializationRate >= 100 && initializationRate <= 300)
)
  fail(`--initialization-rate must be an integer of MiB/s in 100..300, got "${rateOption}"`);
const cold = v['cold-direct-volume'] as string | undefined;
if (cold !== undefined && cold !== 'hold' && cold !== 'continue')
  fail(`--cold-direct-volume must be hold or continue, got "${cold}"`);
const warmOptions = {
  ...(contentGiB !== undefined ? { contentGiB } : {}),
  ...(initialization ? { initialization: initialization as 'provisioned-rate' | 'default-rate' } : {}),
  ...(initializationRate !== undefined ? { initializationRate } : {}),
  ...(cold ? { coldDirectVolume: cold as 'hold' | 'continue' } : {}),
};

const scenario = String(v.scenario);
let result: unknown;
switch (scenario) {
  case 'demo':
    result = await runDemo({ seed, timeScale, log: (line) => console.log(line), json });
    break;
  case 'burst':
    result = await runBurst({
      instances: positiveInt('instances', v.instances as string | undefined, 30),
      idlePerAz: positiveInt('idle-per-az', v['idle-per-az'] as string | undefined, 10, 0),
      azs: positiveInt('azs', v.azs as string | undefined, 1),
      seed,
      timeScale,
      ...(agent ? { agent } : {}),
      ...ruleOptions,
      ...warmOptions,
      log,
    });
    break;
  case 'push': {
    const push = await runPushScenario({
      instances: positiveInt('instances', v.instances as string | undefined, 4),
      idlePerAz: positiveInt('idle-per-az', v['idle-per-az'] as string | undefined, 2, 0),
      azs: positiveInt('azs', v.azs as string | undefined, 1),
      seed,
      timeScale,
      ...ruleOptions,
      log,
    });
    result = {
      ...push.scenario,
      propagationSeconds: push.propagationSeconds,
      launchesDuringPush: push.launchesDuringPush,
    };
    break;
  }
  case 'growth':
    result = await runGrowthScenario({
      instances: positiveInt('instances', v.instances as string | undefined, 2),
      idlePerAz: positiveInt('idle-per-az', v['idle-per-az'] as string | undefined, 2, 0),
      seed,
      timeScale,
      ...(agent ? { agent } : {}),
      ...ruleOptions,
      log,
    });
    break;
  case 'chaos':
    result = await runChaos({
      operations: positiveInt('operations', v.operations as string | undefined, 100),
      azs: positiveInt('azs', v.azs as string | undefined, 2),
      seed,
      timeScale,
      agent: agent ?? 'model',
      bootUnit: v['boot-unit'] === true,
      ...ruleOptions,
      log,
    });
    break;
  case 'scale':
    result = await runScale({
      instances: positiveInt('instances', v.instances as string | undefined, 1000),
      burst: positiveInt('burst', v.burst as string | undefined, 200),
      idlePerAz: positiveInt('idle-per-az', v['idle-per-az'] as string | undefined, 20, 0),
      azs: positiveInt('azs', v.azs as string | undefined, 3),
      seed,
      timeScale: v['time-scale'] === undefined ? 0.1 : timeScale,
      agent: agent ?? 'model',
      ...ruleOptions,
      log,
    });
    break;
  case 'abuse':
    result = await runAbuse({ seed, timeScale: v['time-scale'] === undefined ? 0.05 : timeScale, log });
    break;
  case 'adaptive':
    // Adaptive sizing over modelled days: bursts of --burst launches at the same hour, then quiet days.
    result = await runAdaptive({
      days: positiveInt('days', v.days as string | undefined, 4),
      // One more than the look-back: the last quiet day's tick sees no burst day.
      quietDays: 4,
      burstSize: positiveInt('burst', v.burst as string | undefined, 40),
      azs: positiveInt('azs', v.azs as string | undefined, 1),
      min: 2,
      max: 200,
      budgetDollarsPerMonth: 250,
      lookbackDays: 3,
      seed,
      timeScale,
      agent: agent ?? 'model',
      ...ruleOptions,
      log,
    });
    break;
  case 'copy-at-boot':
    // The baseline without Volsd: an empty volume at boot, the whole content copied onto it.
    result = await runCopyAtBoot({
      instances: positiveInt('instances', v.instances as string | undefined, 1),
      contentGiB: contentGiB ?? 1,
      seed,
      timeScale,
      ...ruleOptions,
      log,
    });
    break;
  default:
    fail(`unknown scenario "${scenario}"`);
}
if (json) console.log(JSON.stringify(result));
else if (scenario !== 'demo') console.log(JSON.stringify(result, null, 2));
process.exit(0);
