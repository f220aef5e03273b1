import { describe, expect, it } from 'vitest';
import { decodeEventKey, encodeEventKey, validateKey } from '../../lambdas/shared/push-keys.js';

describe('validateKey: content under the prefix', () => {
  it('accepts a plain key and gives its path under the prefix', () => {
    // Prepare
    const key = 'live/css/site.css';

    // Act
    const verdict = validateKey(key);

    // Assess
    expect(verdict).toEqual({ kind: 'valid', key, path: 'css/site.css' });
  });

  it('decodes the form encoding of event keys: + is a space, %XX a byte', () => {
    // Prepare
    const encoded = 'live/red+flower%2B%C3%A9.jpg';

    // Act
    const verdict = validateKey(encoded);

    // Assess
    expect(verdict).toEqual({ kind: 'valid', key: 'live/red flower+é.jpg', path: 'red flower+é.jpg' });
  });

  it('takes a key as it is when told it is not encoded', () => {
    // Prepare
    const key = 'live/a+b%20c.txt';

    // Act
    const verdict = validateKey(key, { encoded: false });

    // Assess
    expect(verdict).toEqual({ kind: 'valid', key, path: 'a+b%20c.txt' });
  });

  it('uses the given prefix', () => {
    // Prepare
    const key = 'site/v2/index.html';

    // Act
    const verdict = validateKey(key, { prefix: 'site/v2/' });

    // Assess
    expect(verdict).toEqual({ kind: 'valid', key, path: 'index.html' });
  });

  it('accepts a name of exactly 255 bytes', () => {
    // Prepare
    const key = `live/${'é'.repeat(127)}x`;

    // Act
    const verdict = validateKey(key, { encoded: false });

    // Assess
    expect(verdict.kind).toBe('valid');
  });
});

describe('validateKey: keys that are not content', () => {
  it.each([
    ['outside the prefix', 'staging/index.html'],
    ['the prefix without its slash', 'live'],
    ['a look-alike prefix', 'lively/index.html'],
    ['a directory marker', 'live/images/'],
    ['the prefix itself', 'live/'],
  ])('ignores %s', (_what, key) => {
    // Act
    const verdict = validateKey(key);

    // Assess
    expect(verdict).toEqual({ kind: 'ignored', key });
  });
});

describe('validateKey: keys that escape the tree', () => {
  it.each([
    ['a .. segment', 'live/../etc/passwd', 'parent-segment'],
    ['a .. segment deep in the key', 'live/a/b/../../../x', 'parent-segment'],
    ['a .. segment, URL-encoded', 'live/%2E%2E/x', 'parent-segment'],
    ['an absolute path after the prefix', 'live//etc/cron.d/x', 'absolute'],
    ['an absolute path, URL-encoded', 'live/%2Fetc/x', 'absolute'],
    ['an absolute path with a .. segment', 'live//../x', 'parent-segment'],
    ['a backslash', 'live/a\\..\\b', 'backslash'],
    ['a backslash, URL-encoded', 'live/a%5Cb', 'backslash'],
    ['a control character', 'live/a\u0001b', 'control-character'],
    ['a newline, URL-encoded', 'live/a%0Ab', 'control-character'],
    ['DEL, URL-encoded', 'live/a%7Fb', 'control-character'],
    ['a NUL byte, URL-encoded', 'live/a%00b', 'control-character'],
    ['a . segment', 'live/./x', 'dot-segment'],
    ['an empty segment', 'live/a//b', 'empty-segment'],
    ["Volsd's own marker namespace", 'live/.volsd/generation', 'reserved'],
    ['a marker-like first segment', 'live/.volsd-fs', 'reserved'],
    ['a stray %', 'live/100%.html', 'malformed-encoding'],
    ['bytes that are not UTF-8', 'live/%FF.html', 'malformed-encoding'],
  ])('rejects %s', (_what, key, reason) => {
    // Act
    const verdict = validateKey(key);

    // Assess
    expect(verdict).toMatchObject({ kind: 'rejected', reason });
  });

  it('rejects a name over 255 bytes', () => {
    // Prepare
    const key = `live/${'é'.repeat(128)}`;

    // Act
    const verdict = validateKey(key, { encoded: false });

    // Assess
    expect(verdict).toEqual({ kind: 'rejected', key, reason: 'too-long' });
  });

  it('rejects a key over 1024 bytes made of short names', () => {
    // Prepare
    const key = `live/${'abcdefghi/'.repeat(102)}x`;

    // Act
    const verdict = validateKey(key, { encoded: false });

    // Assess
    expect(verdict).toEqual({ kind: 'rejected', key, reason: 'too-long' });
  });

  it('reports the decoded key, so the report shows what was uploaded', () => {
    // Act
    const verdict = validateKey('live/..%2Fetc%2Fshadow');

    // Assess
    expect(verdict).toEqual({ kind: 'rejected', key: 'live/../etc/shadow', reason: 'parent-segment' });
  });

  it('keeps `..` inside a name, which escapes nothing', () => {
    // Act
    const verdict = validateKey('live/notes..txt');

    // Assess
    expect(verdict.kind).toBe('valid');
  });
});

describe('event key encoding', () => {
  it('encodes a space as + and keeps slashes, as S3 notifications do', () => {
    // Act
    const encoded = encodeEventKey('live/red flower.jpg');

    // Assess
    expect(encoded).toBe('live/red+flower.jpg');
  });

  it('round-trips keys with +, %, control characters and non-ASCII names', () => {
    // Prepare
    const keys = ['live/a+b c%d.txt', 'live/\u0001x', 'live/日本/ü.html', 'live/../x'];

    // Act
    const decoded = keys.map((k) => decodeEventKey(encodeEventKey(k)));

    // Assess
    expect(decoded).toEqual(keys);
  });

  it('returns undefined for a malformed encoding', () => {
    // Act
    const decoded = decodeEventKey('live/%E0%A4%A');

    // Assess
    expect(decoded).toBeUndefined();
  });
});
