/**
 * The Node version gate, imported first by the CLI entry (main.ts) so that it runs before any other module is
 * evaluated: on an older Node (Debian 12 ships 18) the appliance would otherwise fail later with an unrelated
 * message such as "crypto is not defined". One line on stderr, exit code 1.
 */

/** Oldest Node major the appliance runs on (dev machines: 20; the container image: the current LTS). */
export const MIN_NODE_MAJOR = 20;

/** A one-line refusal for `version` (process.versions.node), or null when it is supported. */
export function unsupportedNode(version: string): string | null {
  const major = Number.parseInt(version.split('.')[0] ?? '', 10);
  if (Number.isInteger(major) && major >= MIN_NODE_MAJOR) return null;
  return `gwlb-inspector: Node.js ${version} is not supported; it needs Node.js ${MIN_NODE_MAJOR} or newer (${process.execPath}).`;
}

const refusal = unsupportedNode(process.versions.node);
if (refusal !== null) {
  process.stderr.write(refusal + '\n');
  process.exit(1);
}
