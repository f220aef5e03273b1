#!/usr/bin/env node
/**
 * volsd-client's entry point: runs the CLI on the process's arguments and exits with its code.
 * Run from the bundle (`node dist/volsd-client.mjs`, built by client/build.ts) or with tsx.
 */
import { main } from './main.js';

// The SDK warns on every start that it will need Node 22 from 2027; on a host that is noise in every
// command's output. An explicit setting of the variable wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
process.exitCode = code;
