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
