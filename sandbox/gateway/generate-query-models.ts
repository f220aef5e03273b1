/**
 * Writes `sandbox/gateway/query-models.json`: the parts of botocore's EC2 and Auto Scaling service
 * models (`service-2.json`) that the query-protocol front (`query.ts`) needs to read requests and
 * write responses exactly as AWS does: protocol, API version, XML namespace, and for each operation
 * the simulator answers its input and output shapes with every shape they reach (member names,
 * `locationName`, `queryName`, `flattened`, `resultWrapper`, `required`, types). Documentation is
 * dropped.
 *
 *   npx tsx sandbox/gateway/generate-query-models.ts [BOTOCORE_DATA_DIR]
 *
 * Without an argument it takes the newest botocore found (pyenv's, then Debian's AWS CLI's).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** The operations served, per service: every command of the simulator (a test keeps them in step). */
export const servedOperations = {
  ec2: [
    'AttachVolume',
    'CreateSnapshot',
    'CreateTags',
    'CreateVolume',
    'DeleteSnapshot',
    'DeleteTags',
    'DeleteVolume',
    'DescribeInstanceTypes',
    'DescribeInstances',
    'DescribeSnapshots',
    'DescribeVolumeStatus',
    'DescribeVolumes',
    'DescribeVolumesModifications',
    'DetachVolume',
    'ModifyInstanceAttribute',
    'ModifyVolume',
    'TerminateInstances',
  ],
  autoscaling: [
    'CompleteLifecycleAction',
    'DescribeAutoScalingGroups',
    'DescribeAutoScalingInstances',
    'DescribeLifecycleHooks',
    'RecordLifecycleActionHeartbeat',
    'SetDesiredCapacity',
    'TerminateInstanceInAutoScalingGroup',
  ],
} as const;

const versions = { ec2: '2016-11-15', autoscaling: '2011-01-01' } as const;
const shapeKeys = ['type', 'required', 'flattened', 'resultWrapper', 'timestampFormat', 'min', 'max'];
const memberKeys = ['shape', 'locationName', 'queryName', 'flattened'];

function botocoreDirs(): string[] {
  const dirs: string[] = [];
  const pyenv = '/root/.pyenv/versions';
  if (existsSync(pyenv)) {
    for (const version of readdirSync(pyenv).sort().reverse()) {
      const lib = join(pyenv, version, 'lib');
      if (!existsSync(lib)) continue;
      for (const python of readdirSync(lib)) {
        const data = join(lib, python, 'site-packages', 'botocore', 'data');
        if (existsSync(data)) dirs.push(data);
      }
    }
  }
  dirs.push('/usr/lib/python3/dist-packages/awscli/botocore/data');
  return dirs.filter((d) => existsSync(d));
}

function readModel(dataDir: string, service: keyof typeof versions): Record<string, unknown> {
  const base = join(dataDir, service, versions[service], 'service-2.json');
  if (existsSync(base)) return JSON.parse(readFileSync(base, 'utf8'));
  return JSON.parse(gunzipSync(readFileSync(`${base}.gz`)).toString('utf8'));
}

type Shape = Record<string, unknown> & { members?: Record<string, Record<string, unknown>> };

function trim(model: Record<string, unknown>, operations: readonly string[]) {
  const allShapes = model.shapes as Record<string, Shape>;
  const allOperations = model.operations as Record<string, { input?: { shape: string }; output?: Shape }>;
  const shapes: Record<string, Record<string, unknown>> = {};
  const visit = (name: string) => {
    if (shapes[name]) return;
    const shape = allShapes[name];
    if (!shape) throw new Error(`shape ${name} missing`);
    const out: Record<string, unknown> = {};
    for (const key of shapeKeys) if (shape[key] !== undefined) out[key] = shape[key];
    shapes[name] = out;
    const pick = (ref: Record<string, unknown>) => {
      const picked: Record<string, unknown> = {};
      for (const key of memberKeys) if (ref[key] !== undefined) picked[key] = ref[key];
      visit(String(ref.shape));
      return picked;
    };
    if (shape.members) {
      out.members = Object.fromEntries(Object.entries(shape.members).map(([k, ref]) => [k, pick(ref)]));
    }
    for (const key of ['member', 'key', 'value'] as const) {
      if (shape[key]) out[key] = pick(shape[key] as Record<string, unknown>);
    }
  };
  const ops: Record<string, Record<string, unknown>> = {};
  for (const name of operations) {
    const op = allOperations[name];
    if (!op) throw new Error(`operation ${name} missing`);
    const entry: Record<string, unknown> = {};
    if (op.input) {
      entry.input = op.input.shape;
      visit(op.input.shape);
    }
    if (op.output) {
      entry.output = op.output.shape;
      if (op.output.resultWrapper) entry.resultWrapper = op.output.resultWrapper;
      visit(String(op.output.shape));
    }
    ops[name] = entry;
  }
  const metadata = model.metadata as Record<string, string>;
  return {
    protocol: metadata.protocol,
    apiVersion: metadata.apiVersion,
    xmlNamespace: metadata.xmlNamespace,
    operations: ops,
    shapes: Object.fromEntries(Object.entries(shapes).sort(([a], [b]) => a.localeCompare(b))),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dataDir = process.argv[2] ?? botocoreDirs()[0];
  if (!dataDir) throw new Error('no botocore data directory found: pass one');
  const out = {
    source: 'botocore service-2.json (trimmed by sandbox/gateway/generate-query-models.ts)',
    ec2: trim(readModel(dataDir, 'ec2'), servedOperations.ec2),
    autoscaling: trim(readModel(dataDir, 'autoscaling'), servedOperations.autoscaling),
  };
  const file = fileURLToPath(new URL('./query-models.json', import.meta.url));
  writeFileSync(file, `${JSON.stringify(out)}\n`);
  execFileSync('npx', ['biome', 'format', '--write', file], { stdio: 'inherit' });
  console.log(`wrote ${file} from ${dataDir}`);
}
