/** Workers an AZ needs to hold `volumes` idle and in-flight volumes, `perWorker` each (at least one). */
export function workersFor(volumes: number, perWorker: number): number {
  return Math.max(1, Math.ceil(Math.max(0, volumes) / Math.max(1, perWorker)));
}
