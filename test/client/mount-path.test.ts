import { describe, expect, it } from 'vitest';
import { mountPathProblem, mountRoots, systemTreeOf } from '../../lambdas/shared/mount-path.js';
import { workflowInputSchema } from '../../lambdas/shared/workflow-input.js';

const input = (mountPath: string) => ({
  pool: 'web',
  instanceId: 'i-0123456789abcdef0',
  action: 'manual-acquire',
  requestId: 'r-1',
  mountPath,
});

describe('the mount path policy at the edge', () => {
  it.each([
    ['/srv/www', ['/srv/www']],
    ['/srv/www/site', ['/srv/www']],
    ['/data/x', ['/srv/www', '/data']],
  ])('accepts %s under the roots %j', (path, roots) => {
    // Act / Assess
    expect(mountPathProblem(path, roots)).toBeUndefined();
  });

  it.each([
    ['/etc/cron.d', 'system tree /etc'],
    ['/etc/systemd/system', 'system tree /etc'],
    ['/usr/local/bin', 'system tree /usr'],
    ['/home/ec2-user', 'system tree /home'],
    ['/var/spool/cron', 'system tree /var/spool'],
    ['/var/lib/docker', 'system tree /var/lib'],
    ['/lib64', 'system tree /lib64'],
    ['/srv/wwwx', 'outside the pool'],
    ['/srv', 'outside the pool'],
    ['/', 'normalized'],
    ['/srv/www/', 'normalized'],
    ['/srv//www', 'normalized'],
    ['/srv/www/../../etc', 'normalized'],
    ['/srv/www/./x', 'normalized'],
    ['srv/www', 'normalized'],
    [`/srv/www/${'x'.repeat(200)}`, '200 characters'],
  ])('refuses %s (%s)', (path, why) => {
    // Act
    const problem = mountPathProblem(path, ['/srv/www']);

    // Assess
    expect(problem).toContain(why);
  });

  it('refuses a system tree even when an operator lists it as a root', () => {
    // Act / Assess
    expect(mountPathProblem('/etc/cron.d', ['/etc'])).toContain('system tree /etc');
  });

  it("keeps Volsd's own /var/lib/volsd out of the system trees (the sync worker's mounts)", () => {
    // Act / Assess
    expect(systemTreeOf('/var/lib/volsd/pool/vol-0123')).toBeUndefined();
    expect(systemTreeOf('/var/lib/volsdx')).toBe('/var/lib');
  });

  it("always counts the pool's mount path among its roots", () => {
    // Act / Assess
    expect(mountRoots(undefined, '/srv/www')).toEqual(['/srv/www']);
    expect(mountRoots('/data /srv/www', '/srv/www')).toEqual(['/srv/www', '/data']);
  });

  it('lets the workflow input carry only a normalized path outside the system trees', () => {
    // Act / Assess
    expect(workflowInputSchema.safeParse(input('/srv/www/site')).success).toBe(true);
    expect(workflowInputSchema.safeParse(input('/etc/cron.d')).success).toBe(false);
    expect(workflowInputSchema.safeParse(input('/srv/www/../../etc')).success).toBe(false);
    expect(workflowInputSchema.safeParse(input('/srv/www/')).success).toBe(false);
  });
});
