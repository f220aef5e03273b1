import type { IncomingMessage, ServerResponse } from 'node:http';

/** The largest request body the gateway reads (AWS JSON APIs stay far below it). */
export const maxBodyBytes = 1024 * 1024;

/**
 * An error the gateway answers in the AWS JSON protocol shape: `{"__type": code, "message": ...}`
 * with the HTTP status. The SDK turns `__type` into the exception's `name` (and its modelled class
 * when it has one), so a client sees exactly what it would see from AWS.
 */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/**
 * Turns a value into what the AWS JSON protocols put on the wire: timestamps as epoch seconds
 * (awsJson 1.0 and 1.1 both do), `undefined` dropped, everything else as is.
 */
export function toWire(value: unknown): unknown {
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(toWire);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      if (inner === undefined || key === '$metadata') continue;
      out[key] = toWire(inner);
    }
    return out;
  }
  return value;
}

/** Reads the whole request body (bounded by `maxBodyBytes`). */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > maxBodyBytes) throw new ProtocolError('SerializationException', 'request body too large', 413);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON request body into an object; anything else is a SerializationException. */
export function parseJsonBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ProtocolError('SerializationException', 'request body is not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ProtocolError('SerializationException', 'request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** Writes a JSON protocol response. */
export function sendJson(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: unknown,
  requestId: string,
): void {
  const text = JSON.stringify(toWire(body));
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': requestId,
  });
  res.end(text);
}

/** Writes a JSON protocol error (`__type` and `message`, plus the `x-amzn-errortype` header AWS sends). */
export function sendError(
  res: ServerResponse,
  error: ProtocolError,
  contentType: string,
  requestId: string,
): void {
  const text = JSON.stringify({ __type: error.code, message: error.message });
  res.writeHead(error.status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': requestId,
    'x-amzn-errortype': error.code,
  });
  res.end(text);
}

/** Writes a plain-text response (IMDS answers text). */
export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
