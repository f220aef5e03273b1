import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { currentCommit } from '../../bench/commit.js';

describe('currentCommit', () => {
  it("names HEAD's short commit, marked -dirty only when tracked files changed", () => {
    // Prepare
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
    const head = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    // Act
    const commit = currentCommit();
    // Assess
    expect(commit).toBe(dirty ? `${head}-dirty` : head);
  });
});
