import { formatElapsed } from './format.js';

/** Where progress goes: a terminal (spinner), a pipe (plain lines) or nowhere (--quiet, --output json). */
export type ProgressMode = 'tty' | 'plain' | 'silent';

/** A text sink (process.stderr, or a test's buffer). */
export interface TextSink {
  write(text: string): unknown;
}

/** Reports a waiting workflow: its status and, when known, the step it is in. */
export interface Progress {
  update(status: string, step?: string): void;
  /** Ends the display (clears the spinner line). */
  stop(): void;
}

const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * The progress display for `label` (e.g. "acquire"). In a terminal: one spinner line redrawn ten
 * times a second with the step and the elapsed time. In a pipe: one line per change of status or
 * step, with the elapsed time. Silent: nothing.
 */
export function createProgress(
  mode: ProgressMode,
  label: string,
  sink: TextSink,
  now: () => number = Date.now,
): Progress {
  const started = now();
  let status = 'STARTING';
  let step: string | undefined;
  if (mode === 'silent') return { update() {}, stop() {} };
  if (mode === 'plain') {
    let last = '';
    return {
      update(nextStatus, nextStep) {
        const shown = nextStep ? `${nextStatus} ${nextStep}` : nextStatus;
        if (shown === last) return;
        last = shown;
        sink.write(`${label}: ${shown} (${formatElapsed(now() - started)})\n`);
      },
      stop() {},
    };
  }
  let frame = 0;
  const draw = () => {
    const what = step ? `${step}` : status.toLowerCase();
    sink.write(
      `\r\x1b[2K${frames[frame % frames.length]} ${label}: ${what}  ${formatElapsed(now() - started)}`,
    );
    frame++;
  };
  const timer = setInterval(draw, 100);
  timer.unref();
  draw();
  return {
    update(nextStatus, nextStep) {
      status = nextStatus;
      step = nextStep ?? step;
      draw();
    },
    stop() {
      clearInterval(timer);
      sink.write('\r\x1b[2K');
    },
  };
}
