import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { awsErrorNames, namedErrors, VolsdError } from '../../lambdas/shared/errors.js';
import { allVolumeStates, canTransition, transitions, VolumeState } from '../../lambdas/shared/model.js';

describe('volume model', () => {
  it('lists a transition row for every state and names only known states', () => {
    expect(Object.keys(transitions).sort()).toEqual([...allVolumeStates].sort());
    for (const targets of Object.values(transitions)) {
      for (const to of targets) expect(allVolumeStates).toContain(to);
    }
  });

  it('lets every state reach RETIRING (nothing can be stranded)', () => {
    for (const start of allVolumeStates) {
      const seen = new Set([start]);
      const queue = [start];
      while (queue.length) {
        const s = queue.shift() as VolumeState;
        for (const next of transitions[s]) {
          if (seen.has(next)) continue;
          seen.add(next);
          queue.push(next);
        }
      }
      expect(seen.has(VolumeState.Retiring), `${start} cannot reach RETIRING`).toBe(true);
    }
  });

  it('follows the happy path of acquire and release', () => {
    const path = [
      'CREATING',
      'SYNCING',
      'IDLE',
      'CLAIMED',
      'DETACHING',
      'ATTACHING',
      'IN_USE',
      'RELEASING',
      'RETIRING',
    ];
    for (let i = 1; i < path.length; i++) {
      expect(canTransition(path[i - 1] as VolumeState, path[i] as VolumeState)).toBe(true);
    }
    expect(canTransition(VolumeState.Idle, VolumeState.InUse)).toBe(false);
  });
});

describe('named errors', () => {
  it('sets name to the class name, keeps the cause and is a VolsdError', () => {
    const cause = new Error('root');
    for (const [name, Cls] of Object.entries(namedErrors)) {
      const err = new Cls('m', { cause });
      expect(err.name).toBe(name);
      expect(err).toBeInstanceOf(VolsdError);
      expect(err.cause).toBe(cause);
    }
  });

  it('covers every Volsd error name that a state machine matches in ErrorEquals', () => {
    const dir = join(import.meta.dirname, '../../statemachines');
    const files = readdirSync(dir).filter((f) => f.endsWith('.asl.json'));
    expect(files.length).toBeGreaterThan(0);
    const referenced = new Set<string>();
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      for (const m of text.matchAll(/"ErrorEquals"\s*:\s*\[([^\]]*)\]/g)) {
        for (const n of (m[1] ?? '').matchAll(/"([^"]+)"/g)) if (n[1]) referenced.add(n[1]);
      }
    }
    const awsOrBuiltin = (n: string) =>
      n.startsWith('States.') || n.startsWith('Lambda.') || awsErrorNames.includes(n);
    for (const name of referenced) {
      if (awsOrBuiltin(name)) continue;
      expect(Object.keys(namedErrors), `${name} is matched in ASL but is no named error`).toContain(name);
    }
  });
});
