/**
 * One NameRecord (src/domain/name-record.ts) for tests: plausible defaults, any field overridden.
 * Tests that need particular defaults wrap it (`rec(host, endpoint, name, ip)`).
 */
import type { NameRecord } from '../../src/domain/name-record';

export const nameRecord = (over: Partial<NameRecord> = {}): NameRecord => ({
  networkId: 'appnet',
  networkName: 'appnet',
  containerName: 'web-1',
  endpointId: 'e1'.repeat(32),
  aliases: [],
  ipv4: ['10.1.40.2'],
  ipv6: [],
  host: '192.0.2.1',
  updatedAt: new Date().toISOString(),
  ...over,
});
