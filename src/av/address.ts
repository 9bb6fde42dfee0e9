/**
 * Where clamd listens: `unix:/path/clamd.sock` (its LocalSocket) or `tcp:host:port` (its TCPSocket/TCPAddr).
 * Parsed and validated once, at start (settings `--clamd`); a bad address is a fault with a stable code.
 */
import { isIP } from 'node:net';

export type ClamdAddress = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** Linux sun_path is 108 bytes including the terminating NUL (unix(7)). */
export const UNIX_PATH_MAX_BYTES = 107;
/** RFC 1035 §2.3.4: a host name is at most 255 octets (253 in text form without the trailing dot). */
const HOSTNAME_MAX_CHARS = 253;
const LABEL_MAX_CHARS = 63;

export class ClamdAddressError extends Error {
  readonly code = 'GWI_ERR_CLAMD_ADDRESS';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ClamdAddressError';
  }
}

function isHostname(host: string): boolean {
  if (host.length === 0 || host.length > HOSTNAME_MAX_CHARS) return false;
  for (const label of host.split('.')) {
    if (label.length === 0 || label.length > LABEL_MAX_CHARS) return false;
    if (label.startsWith('-') || label.endsWith('-')) return false;
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i);
      const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d;
      if (!ok) return false;
    }
  }
  return true;
}

/** `unix:/abs/path` or `tcp:host:port` (IPv6 in brackets: `tcp:[::1]:3310`). Throws ClamdAddressError. */
export function parseClamdAddress(text: string): ClamdAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path.startsWith('/')) throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: the unix socket path must be absolute`);
    if (Buffer.byteLength(path) > UNIX_PATH_MAX_BYTES) {
      throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: the unix socket path is longer than ${UNIX_PATH_MAX_BYTES} bytes`);
    }
    if (path.includes('\0')) throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: NUL in the path`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('tcp:')) {
    const rest = text.slice('tcp:'.length);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: expected tcp:host:port`);
    let host = rest.slice(0, colon);
    const portText = rest.slice(colon + 1);
    if (host.startsWith('[') && host.endsWith(']')) {
      host = host.slice(1, -1);
      if (isIP(host) !== 6) throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: [${host}] is not an IPv6 address`);
    } else if (isIP(host) === 6) {
      throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: write IPv6 addresses in brackets, tcp:[${host}]:PORT`);
    } else if (isIP(host) !== 4 && !isHostname(host)) {
      throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: ${JSON.stringify(host)} is not an IP address or host name`);
    }
    const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: port must be 1-65535`);
    return { kind: 'tcp', host, port };
  }
  throw new ClamdAddressError(`clamd address ${JSON.stringify(text)}: expected unix:/path/clamd.sock or tcp:host:port`);
}

export function formatClamdAddress(a: ClamdAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.host.includes(':') ? `tcp:[${a.host}]:${a.port}` : `tcp:${a.host}:${a.port}`;
}

/** For the settings schema: true when parseClamdAddress accepts `text`. */
export function isClamdAddress(text: string): boolean {
  try {
    parseClamdAddress(text);
    return true;
  } catch {
    return false;
  }
}
