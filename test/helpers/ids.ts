/** Deterministic, well-formed EC2 ids for tests. */
export const volumeId = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
export const instanceId = (n: number) => `i-${n.toString(16).padStart(17, '0')}`;
