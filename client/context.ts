import { VolumeRepository } from '../lambdas/shared/repository.js';
import { poolTag } from '../lambdas/shared/tags.js';
import { poolNameSchema } from '../lambdas/shared/validate.js';
import { type AwsClients, createClients, resolveRegion } from './aws.js';
import type { CommandArgs, CommandName, GlobalArgs } from './cli.js';
import { ClientError, ExitCode, UsageError } from './errors.js';
import { HostApiClient } from './host-api.js';
import { type HostIdentity, InstanceMetadata } from './imds.js';
import { configParameterNames, configParameterPath, loadPoolConfig, type PoolConfig } from './pool-config.js';
import type { ProgressMode, TextSink } from './progress.js';

/** What a command gets: its parsed arguments, the environment, where to report progress. */
export interface CommandContext {
  command: CommandName;
  globals: GlobalArgs;
  args: CommandArgs;
  env: Record<string, string | undefined>;
  progressMode: ProgressMode;
  /** Progress and notes go here (stderr), never to the result stream. */
  progressSink: TextSink;
  now: () => number;
  /** Clients created for the command, closed by the caller when it ends. */
  clients?: AwsClients;
}

/** What a command produced: the data (printed as JSON with --output json) and its table rendering. */
export interface CommandResult {
  data: unknown;
  text: string;
}

/** A pool session: the pool's configuration, clients in its Region, and its table. */
export interface PoolSession {
  config: PoolConfig;
  clients: AwsClients;
  repo: VolumeRepository;
}

/** A session on an EC2 host of the pool: also who the host is, and the pool's host API. */
export interface HostSession extends PoolSession {
  host: HostIdentity;
  /** The only way a host acts: its requests are signed by its own credentials. */
  hostApi: HostApiClient;
}

function poolFromFlags(ctx: CommandContext): string | undefined {
  return ctx.globals.pool ?? (ctx.env.VOLSD_POOL || undefined);
}

function noPool(ctx: CommandContext, onHost: boolean): UsageError {
  return new UsageError(
    `no pool: pass --pool NAME or set VOLSD_POOL${onHost ? ` (or tag the instance ${poolTag}=NAME)` : ''}`,
    `volsd-client ${ctx.command} --help`,
  );
}

async function openPool(ctx: CommandContext, pool: string, regionFallback?: string): Promise<PoolSession> {
  // --pool is checked by the parser; VOLSD_POOL and the instance tag are checked here.
  if (!poolNameSchema.safeParse(pool).success) {
    throw new UsageError(
      `'${pool}' is not a pool name (1-32 of a-z, 0-9, -)`,
      `volsd-client ${ctx.command} --help`,
    );
  }
  const region = await resolveRegion(ctx.globals, regionFallback);
  const clients = createClients(region, ctx.globals);
  ctx.clients = clients;
  const config = await loadPoolConfig(clients.ssm, pool, region);
  return { config, clients, repo: new VolumeRepository(clients.doc, { tableName: config.tableName }) };
}

/**
 * Opens a session for an admin command: the pool from --pool or VOLSD_POOL, the Region from --region
 * or the SDK's chain, the configuration from Parameter Store.
 */
export async function openAdminSession(ctx: CommandContext): Promise<PoolSession> {
  const pool = poolFromFlags(ctx);
  if (!pool) throw noPool(ctx, false);
  return openPool(ctx, pool);
}

/**
 * Opens a session on an EC2 host: who the host is (IMDSv2, exit 3 off EC2), the pool from --pool,
 * VOLSD_POOL or the instance's `volsd:pool` tag, the Region from --region, the SDK's chain or the
 * host's own, then the pool's configuration.
 */
export async function openHostSession(ctx: CommandContext): Promise<HostSession> {
  const imds = new InstanceMetadata(ctx.env);
  const host = await imds.identity();
  const pool = poolFromFlags(ctx) ?? (await imds.tag(poolTag));
  if (!pool) throw noPool(ctx, true);
  const session = await openPool(ctx, pool, host.region);
  const url = session.config.hostApiUrl;
  if (!url) {
    const parameter = `${configParameterPath(session.config.pool)}/${configParameterNames.hostApiUrl}`;
    throw new ClientError(
      ExitCode.NotDeployed,
      'NotDeployed',
      `the host API is not deployed in pool '${session.config.pool}' (no parameter ${parameter})`,
      { pool: session.config.pool, parameter },
    );
  }
  const { ssm } = session.clients;
  const hostApi = new HostApiClient(url, session.clients.region, () => ssm.config.credentials());
  return { ...session, host, hostApi };
}
