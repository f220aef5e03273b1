/**
 * Tag keys Volsd puts on what it owns. IAM policies condition every mutating EC2 call on `poolTag`
 * (`aws:ResourceTag/volsd:pool` and `aws:RequestTag/volsd:pool`), and SSM reaches pool hosts by it.
 */
export const poolTag = 'volsd:pool';
/** What the resource is to Volsd: `volume`, `worker` (sync worker instance) or `client` (a host). */
export const roleTag = 'volsd:role';
/** Content generation a snapshot was taken at. */
export const generationTag = 'volsd:generation';

export const Role = { Volume: 'volume', Worker: 'worker', Client: 'client' } as const;

/**
 * Instance tag saying the instance runs Volsd's boot unit (scripts/volsd-boot.sh): its acquire waits
 * for the unit's signal instead of mounting over SSM. Value `1`. The construct propagates it from the
 * groups it gives the unit to; README shows it for groups defined elsewhere.
 */
export const bootUnitTag = 'volsd:boot-unit';
