/**
 * The EICAR anti-malware test file (https://www.eicar.org/download-anti-malware-testfile/): 68 printable bytes
 * every scanner detects on purpose. Kept here in hex so this source file is not itself a test file to scanners.
 * The canary scans it; rules/clamav/gwi-test.ndb carries the same bytes as a body signature.
 */
const EICAR_HEX =
  '58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a';

export const EICAR_BYTES = 68;

/** A fresh copy of the EICAR test object. */
export function eicarTestObject(): Buffer {
  return Buffer.from(EICAR_HEX, 'hex');
}
