/** 32-bit FNV-1a hash of a string: turns labels and seeds into PRNG seeds. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A small seeded PRNG (mulberry32): the same seed gives the same sequence. Not cryptographic; used
 * for latency jitter, fault choices and resource ids so a scenario can be replayed.
 */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A float in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p` (0..1). Always consumes one draw, so sequences stay aligned. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** `digits` lowercase hex digits. */
  hex(digits: number): string {
    let out = '';
    while (out.length < digits) out += Math.floor(this.next() * 16).toString(16);
    return out;
  }

  /** A version-4 style UUID built from this generator (reproducible, unlike crypto.randomUUID). */
  uuid(): string {
    const h = this.hex(32);
    const variant = ((Number.parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }

  /** An independent generator derived from this seed and a label: streams do not disturb each other. */
  fork(label: string): Rng {
    return new Rng(hash32(`${this.seed}:${label}`));
  }
}

/**
 * A decision that depends only on the seed and the labels, never on call order: the n-th attach of
 * vol-x gets the same fault whatever else ran concurrently.
 */
export function seededChance(seed: number, p: number, ...labels: (string | number)[]): boolean {
  if (p <= 0) return false;
  if (p >= 1) return true;
  return new Rng(hash32(`${seed}:${labels.join(':')}`)).next() < p;
}
