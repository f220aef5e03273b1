import { dirname, relative } from 'node:path';
import { buildSync } from 'esbuild';

/*
 * The AWS calls a function's code can make, read from its bundle: esbuild bundles the handler with
 * tree shaking (the SDK left external, so only Volsd's code is in the output), and every command the
 * remaining code constructs (`new XCommand(`), or pages through (`paginateX(`), is a call. Tree shaking
 * drops unreferenced functions, not unused methods of a kept class or branches a configuration never
 * takes, so the set can only be larger than what runs: a grant missing for a call in it may be a call
 * that never happens (the test lists those with reasons); a grant with no call in it is never used.
 */

/** IAM action of an SDK command, by the client package it comes from. */
const services: Record<string, (command: string) => string> = {
  'client-ec2': (c) => `ec2:${c}`,
  'client-auto-scaling': (c) => `autoscaling:${c}`,
  'client-ssm': (c) => `ssm:${c}`,
  'client-sfn': (c) => `states:${c}`,
  'client-sqs': (c) => `sqs:${c}`,
  'client-sns': (c) => `sns:${c}`,
  'client-lambda': (c) => `lambda:${c}`,
  // ListObjectsV2 is authorized as s3:ListBucket (Amazon S3 API Reference, ListObjectsV2, Permissions).
  'client-s3': (c) => (c === 'ListObjectsV2' ? 's3:ListBucket' : `s3:${c}`),
  'client-dynamodb': (c) => `dynamodb:${c}`,
  // The document client's commands are the table's item actions.
  'lib-dynamodb': (c) =>
    `dynamodb:${{ Get: 'GetItem', Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem', BatchGet: 'BatchGetItem', BatchWrite: 'BatchWriteItem', TransactGet: 'TransactGetItems', TransactWrite: 'TransactWriteItems' }[c] ?? c}`,
};

const cache = new Map<string, ReadonlySet<string>>();

/** IAM actions of every AWS call reachable from `handlerName` of the module `entry` (absolute path). */
export function callsOf(entry: string, handlerName = 'handler'): ReadonlySet<string> {
  const key = `${entry}#${handlerName}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const root = dirname(entry);
  const result = buildSync({
    stdin: {
      contents: `export { ${handlerName} } from './${relative(root, entry).replace(/\.ts$/, '.js')}';`,
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    treeShaking: true,
    external: ['@aws-sdk/*', '@smithy/*', '@aws-lambda-powertools/*', '@middy/*', 'aws-xray-sdk-core'],
    logLevel: 'silent',
  });
  const text = result.outputFiles[0]?.text ?? '';
  const imports = /import\s*\{([^}]*)\}\s*from\s*"@aws-sdk\/([^"]+)";?/g;
  const local = new Map<string, { pkg: string; name: string }>();
  for (const m of text.matchAll(imports)) {
    for (const spec of (m[1] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const [name = '', alias] = spec.split(/\s+as\s+/);
      local.set(alias ?? name, { pkg: m[2] ?? '', name });
    }
  }
  const code = text.replace(imports, '');
  const calls = new Set<string>();
  for (const [alias, { pkg, name }] of local) {
    const command = /^(\w+)Command$/.exec(name)?.[1] ?? /^paginate(\w+)$/.exec(name)?.[1];
    const action = command ? services[pkg]?.(command) : undefined;
    if (!action) continue;
    if (new RegExp(`\\b${alias}\\s*\\(`).test(code)) calls.add(action);
  }
  cache.set(key, calls);
  return calls;
}
